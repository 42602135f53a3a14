/*
 * The init of an exec, in C: once the constructor has joined the
 * container's namespaces (and forked into its pid namespace), it reads the
 * process the runtime prepared (libct's execConfig, a binary message on the
 * sync socket), sets it up and execs it, without ever starting the Go
 * runtime: a Go start-up and a cold JSON decode are most of what an exec's
 * init would otherwise cost.
 *
 * The steps and their order are those of the create init's last stage
 * (libct's prepareProcess, newLaunch, drop and exec), and so are the error
 * texts, which reach the user: the runtime relays them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <termios.h>
#include <unistd.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#include "execinit.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/* Keep in step with libct/execinit.go. */
#define EXEC_MAGIC 0x31584542u /* "BEX1" */
#define EXEC_NNP 1u
#define EXEC_UMASK 2u
#define EXEC_OOM 4u
#define EXEC_MAX (16u << 20)

enum { CAP_BND, CAP_EFF, CAP_INH, CAP_PRM, CAP_AMB, NCAPSETS };

struct rlim {
	uint32_t res;
	uint64_t soft, hard;
	char *name;
};

struct config {
	int32_t console_fd;
	uint16_t rows, cols;
	uint32_t flags;
	int32_t oom;
	uint32_t umask, uid, gid;
	uint32_t ngroups;
	gid_t *groups;
	uint64_t caps[NCAPSETS];
	uint32_t nrlimits;
	struct rlim *rlimits;
	uint64_t seccomp_flags;
	uint32_t proglen;
	unsigned char *prog;
	uint32_t preserve;
	char *apparmor, *cwd;
	char **args, **env;
};

static int syncfd;

const char *berth_errstr(int err)
{
	static char buf[128];
	snprintf(buf, sizeof(buf), "%s", strerror(err));
	if (buf[0] >= 'A' && buf[0] <= 'Z')
		buf[0] += 'a' - 'A';
	return buf;
}

void berth_fail(int fd, const char *fmt, ...)
{
	char msg[1024], out[2 * sizeof(msg) + 64];
	size_t n = 0;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	n += snprintf(out, sizeof(out), "{\"type\":\"error\",\"msg\":\"");
	for (const unsigned char *p = (const unsigned char *)msg; *p && n < sizeof(out) - 16; p++) {
		if (*p == '"' || *p == '\\')
			n += snprintf(out + n, sizeof(out) - n, "\\%c", *p);
		else if (*p < 0x20)
			n += snprintf(out + n, sizeof(out) - n, "\\u%04x", *p);
		else
			out[n++] = *p;
	}
	n += snprintf(out + n, sizeof(out) - n, "\"}\n");
	if (fd < 0 || write(fd, out, n) < 0)
		dprintf(2, "berth-runtime init: %s\n", msg);
	_exit(1);
}

#define fail(...) berth_fail(syncfd, __VA_ARGS__)
#define errstr berth_errstr

/* A cursor over the message; any overrun is a malformed message. */
struct rd {
	const unsigned char *p, *end;
};

static void need(struct rd *r, size_t n)
{
	if ((size_t)(r->end - r->p) < n)
		fail("init: malformed exec config");
}

static void take(struct rd *r, void *v, size_t n)
{
	need(r, n);
	memcpy(v, r->p, n);
	r->p += n;
}

static uint32_t u32(struct rd *r)
{
	uint32_t v;
	take(r, &v, sizeof(v));
	return v;
}

static uint64_t u64(struct rd *r)
{
	uint64_t v;
	take(r, &v, sizeof(v));
	return v;
}

static char *str(struct rd *r)
{
	uint32_t n = u32(r);
	char *s;
	need(r, n);
	s = malloc(n + 1);
	if (s == NULL)
		fail("init: out of memory");
	take(r, s, n);
	s[n] = 0;
	return s;
}

static char **strs(struct rd *r, size_t extra)
{
	uint32_t n = u32(r);
	char **v;
	need(r, (size_t)n * 4);
	v = calloc(n + extra + 1, sizeof(char *));
	if (v == NULL)
		fail("init: out of memory");
	for (uint32_t i = 0; i < n; i++)
		v[i] = str(r);
	return v;
}

static void readfull(void *buf, size_t n)
{
	for (size_t done = 0; done < n;) {
		ssize_t k = read(syncfd, (char *)buf + done, n - done);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			_exit(1); /* the runtime is gone, or gave up */
		done += k;
	}
}

static void decode(struct config *c)
{
	uint32_t len;
	unsigned char *buf;
	struct rd r;

	readfull(&len, 4);
	if (len > EXEC_MAX)
		fail("init: exec config of %u bytes", len);
	buf = malloc(len);
	if (buf == NULL)
		fail("init: out of memory");
	readfull(buf, len);
	r.p = buf;
	r.end = buf + len;
	if (u32(&r) != EXEC_MAGIC)
		fail("init: not an exec config");
	c->console_fd = (int32_t)u32(&r);
	c->rows = u32(&r);
	c->cols = u32(&r);
	c->flags = u32(&r);
	c->oom = (int32_t)u32(&r);
	c->umask = u32(&r);
	c->uid = u32(&r);
	c->gid = u32(&r);
	c->ngroups = u32(&r);
	need(&r, (size_t)c->ngroups * 4);
	c->groups = calloc(c->ngroups + 1, sizeof(gid_t));
	if (c->groups == NULL)
		fail("init: out of memory");
	for (uint32_t i = 0; i < c->ngroups; i++)
		c->groups[i] = u32(&r);
	for (int i = 0; i < NCAPSETS; i++)
		c->caps[i] = u64(&r);
	c->nrlimits = u32(&r);
	need(&r, (size_t)c->nrlimits * 24);
	c->rlimits = calloc(c->nrlimits + 1, sizeof(struct rlim));
	if (c->rlimits == NULL)
		fail("init: out of memory");
	for (uint32_t i = 0; i < c->nrlimits; i++) {
		c->rlimits[i].res = u32(&r);
		c->rlimits[i].soft = u64(&r);
		c->rlimits[i].hard = u64(&r);
		c->rlimits[i].name = str(&r);
	}
	c->seccomp_flags = u64(&r);
	c->proglen = u32(&r);
	need(&r, c->proglen);
	c->prog = (unsigned char *)r.p;
	r.p += c->proglen;
	c->preserve = u32(&r);
	c->apparmor = str(&r);
	c->cwd = str(&r);
	c->args = strs(&r, 0);
	c->env = strs(&r, 1); /* room for HOME */
	if (c->args[0] == NULL)
		fail("init: no args");
}

/* readsmall reads a short file into buf, NUL-terminated; -1 if unreadable. */
static int readsmall(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;
	if (fd < 0)
		return -1;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = 0;
	return 0;
}

static void writefile(const char *path, const char *s, const char *what)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		fail("%s: open %s: %s", what, path, errstr(errno));
	if (write(fd, s, strlen(s)) < 0)
		fail("%s: write %s: %s", what, path, errstr(errno));
	close(fd);
}

/* setupConsole's steps: a pty from the container's /dev/ptmx, its master
 * sent over the console socket, its slave our stdio and controlling tty. */
static void console(struct config *c)
{
	int master, slave, n, unlock = 0;
	char slavepath[64];
	char name[] = "/dev/ptmx";
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { .iov_base = name, .iov_len = strlen(name) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm;

	master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (master < 0)
		fail("open /dev/ptmx: %s", errstr(errno));
	if (ioctl(master, TIOCSPTLCK, &unlock) < 0)
		fail("unlockpt: %s", errstr(errno));
	if (ioctl(master, TIOCGPTN, &n) < 0)
		fail("ptsname: %s", errstr(errno));
	snprintf(slavepath, sizeof(slavepath), "/dev/pts/%d", n);
	memset(cbuf, 0, sizeof(cbuf));
	cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &master, sizeof(int));
	if (sendmsg(c->console_fd, &mh, 0) < 0)
		fail("send pty master: %s", errstr(errno));
	close(c->console_fd);
	close(master);
	slave = open(slavepath, O_RDWR | O_CLOEXEC);
	if (slave < 0)
		fail("open %s: %s", slavepath, errstr(errno));
	if (c->cols > 0) {
		struct winsize ws = { .ws_row = c->rows, .ws_col = c->cols };
		ioctl(slave, TIOCSWINSZ, &ws);
	}
	if (setsid() < 0)
		fail("setsid: %s", errstr(errno));
	if (ioctl(slave, TIOCSCTTY, 0) < 0)
		fail("set controlling terminal: %s", errstr(errno));
	for (int i = 0; i < 3; i++)
		if (dup3(slave, i, 0) < 0)
			fail("dup3: %s", errstr(errno));
	if (slave > 2)
		close(slave);
}

static int executable(const char *p)
{
	struct stat st;
	if (stat(p, &st) < 0)
		return errno;
	if (S_ISDIR(st.st_mode) || (st.st_mode & 0111) == 0)
		return EACCES;
	return 0;
}

/* lookpath is process.LookPath: the program in the process's own PATH. */
static char *lookpath(const char *file, char **env)
{
	const char *path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	static char buf[PATH_MAX];
	int err;

	if (strchr(file, '/') != NULL) {
		if ((err = executable(file)) == EACCES)
			fail("exec: \"%s\": permission denied", file);
		else if (err)
			fail("exec: \"%s\": stat %s: %s", file, file, errstr(err));
		return (char *)file;
	}
	for (char **e = env; *e; e++)
		if (strncmp(*e, "PATH=", 5) == 0)
			path = *e + 5;
	for (const char *p = path;; p++) {
		const char *end = strchrnul(p, ':');
		int dlen = end - p;
		if (dlen == 0)
			snprintf(buf, sizeof(buf), "./%s", file);
		else
			snprintf(buf, sizeof(buf), "%.*s/%s", dlen, p, file);
		if (executable(buf) == 0)
			return buf;
		if (*end == 0)
			break;
		p = end;
	}
	fail("exec: \"%s\": executable file not found in $PATH", file);
}

/* home is the user's directory in the container's /etc/passwd, or "/". */
static char *home(uint32_t uid)
{
	FILE *f = fopen("/etc/passwd", "re");
	char line[1024], id[16], *out = "/";
	if (f == NULL)
		return out;
	snprintf(id, sizeof(id), "%u", uid);
	while (fgets(line, sizeof(line), f)) {
		char *field[7] = { 0 }, *s = line;
		int n = 0;
		line[strcspn(line, "\n")] = 0;
		while (n < 7 && (field[n] = strsep(&s, ":")) != NULL)
			n++;
		if (n >= 6 && strcmp(field[2], id) == 0) {
			out = strdup(field[5]);
			break;
		}
	}
	fclose(f);
	return out;
}

static int hasenv(char **env, const char *k)
{
	size_t n = strlen(k);
	for (; *env; env++)
		if (strncmp(*env, k, n) == 0 && (*env)[n] == '=')
			return 1;
	return 0;
}

static void apparmor_check(const char *profile)
{
	char b[8];
	if (readsmall("/sys/module/apparmor/parameters/enabled", b, sizeof(b)) < 0 || b[0] != 'Y')
		fail("apparmor profile \"%s\" requested but AppArmor is not enabled on this host", profile);
}

static void load_seccomp(struct config *c)
{
	struct sock_fprog prog = { .len = c->proglen / 8, .filter = (struct sock_filter *)c->prog };
	if (c->proglen == 0 || c->proglen % 8 || c->proglen / 8 > 0xffff)
		fail("seccomp: a filter of %u bytes", c->proglen);
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, (unsigned long)c->seccomp_flags, &prog) < 0)
		fail("seccomp: load filter: %s", errstr(errno));
}

static int last_cap(void)
{
	char b[16];
	if (readsmall("/proc/sys/kernel/cap_last_cap", b, sizeof(b)) < 0)
		return 40;
	return atoi(b);
}

static void setuser(struct config *c)
{
	char b[16];
	int allow;

	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
		fail("keepcaps: %s", errstr(errno));
	allow = readsmall("/proc/self/setgroups", b, sizeof(b)) < 0 || strncmp(b, "deny", 4) != 0;
	if (allow) {
		if (syscall(SYS_setgroups, (size_t)c->ngroups, c->groups) < 0)
			fail("setgroups: %s", errstr(errno));
	} else if (c->ngroups > 0) {
		fail("additionalGids given but setgroups is denied in this user namespace");
	}
	/* Raw syscalls: glibc's wrappers would signal other threads; there
	 * are none, but the syscalls say what is meant. */
	if (syscall(SYS_setresgid, c->gid, c->gid, c->gid) < 0)
		fail("setgid %u: %s", c->gid, errstr(errno));
	if (syscall(SYS_setresuid, c->uid, c->uid, c->uid) < 0)
		fail("setuid %u: %s", c->uid, errstr(errno));
	if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
		fail("keepcaps: %s", errstr(errno));
	if (c->flags & EXEC_UMASK)
		umask(c->umask);
}

static void setcaps(struct config *c)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2];

	for (int i = 0; i < 2; i++) {
		data[i].effective = (uint32_t)(c->caps[CAP_EFF] >> (32 * i));
		data[i].permitted = (uint32_t)(c->caps[CAP_PRM] >> (32 * i));
		data[i].inheritable = (uint32_t)(c->caps[CAP_INH] >> (32 * i));
	}
	if (syscall(SYS_capset, &hdr, data) < 0)
		fail("capset: %s", errstr(errno));
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		fail("clear ambient capabilities: %s", errstr(errno));
	/* The spec may ask for ambient caps the kernel refuses: ignored. */
	for (int i = 0; i < 64; i++)
		if (c->caps[CAP_AMB] & (1ULL << i))
			prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, i, 0, 0);
}

void berth_exec_init(int fd)
{
	struct config c = { 0 };
	char *path;
	int last;

	syncfd = fd;
	/* Nobody in the container may ptrace us or open our /proc files. */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	decode(&c);
	if (c.console_fd >= 0)
		console(&c);
	/* prepareProcess */
	if (c.apparmor[0])
		apparmor_check(c.apparmor);
	if (c.flags & EXEC_OOM) {
		char b[16];
		snprintf(b, sizeof(b), "%d", c.oom);
		writefile("/proc/self/oom_score_adj", b, "oom_score_adj");
	}
	if (chdir(c.cwd) < 0)
		fail("chdir to cwd (\"%s\") set in config.json failed: %s", c.cwd, errstr(errno));
	path = lookpath(c.args[0], c.env);
	/* newLaunch */
	if (!hasenv(c.env, "HOME")) {
		char **e = c.env;
		while (*e)
			e++;
		if (asprintf(e, "HOME=%s", home(c.uid)) < 0)
			fail("init: out of memory");
	}
	/* drop */
	for (uint32_t i = 0; i < c.nrlimits; i++) {
		struct rlimit rl = { .rlim_cur = c.rlimits[i].soft, .rlim_max = c.rlimits[i].hard };
		if (prlimit(0, c.rlimits[i].res, &rl, NULL) < 0)
			fail("setrlimit %s: %s", c.rlimits[i].name, errstr(errno));
	}
	if (c.apparmor[0]) {
		char b[1024];
		int afd = open("/proc/self/attr/apparmor/exec", O_WRONLY | O_CLOEXEC);
		if (afd < 0 && (afd = open("/proc/self/attr/exec", O_WRONLY | O_CLOEXEC)) < 0)
			fail("apparmor: %s", errstr(errno));
		snprintf(b, sizeof(b), "exec %s", c.apparmor);
		if (write(afd, b, strlen(b)) < 0)
			fail("apparmor: %s", errstr(errno));
		close(afd);
	}
	/* Without no_new_privs the filter needs CAP_SYS_ADMIN: load it now. */
	if (c.proglen > 0 && !(c.flags & EXEC_NNP))
		load_seccomp(&c);
	last = last_cap();
	for (int i = 0; i <= last; i++)
		if (!(c.caps[CAP_BND] & (1ULL << i)) && prctl(PR_CAPBSET_DROP, i, 0, 0, 0) < 0 && errno != EINVAL)
			fail("drop bounding capability %d: %s", i, errstr(errno));
	setuser(&c);
	setcaps(&c);
	if ((c.flags & EXEC_NNP) && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		fail("no_new_privs: %s", errstr(errno));
	if (chdir(c.cwd) < 0)
		fail("chdir to cwd (\"%s\") set in config.json failed: %s", c.cwd, errstr(errno));
	/* exec: a no_new_privs filter as late as possible */
	if (c.proglen > 0 && (c.flags & EXEC_NNP))
		load_seccomp(&c);
	/* Nothing of ours may leak into the container; the sync socket is
	 * closed by the exec, which tells the runtime it happened. */
	syscall(SYS_close_range, 3 + c.preserve, ~0U, CLOSE_RANGE_CLOEXEC);
	execve(path, c.args, c.env);
	fail("exec %s: %s", c.args[0], errstr(errno));
}
