#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "execinit.h"

#define MAXNS 16

static int syncfd = -1;

static void __attribute__((noreturn)) fail(const char *what, const char *path, int err)
{
	berth_fail(syncfd, "nsenter: %s %s: %s", what, path, berth_errstr(err));
}

static int nstype(const char *t)
{
	if (!strcmp(t, "user")) return CLONE_NEWUSER;
	if (!strcmp(t, "ipc")) return CLONE_NEWIPC;
	if (!strcmp(t, "uts")) return CLONE_NEWUTS;
	if (!strcmp(t, "net")) return CLONE_NEWNET;
	if (!strcmp(t, "pid")) return CLONE_NEWPID;
	if (!strcmp(t, "mnt")) return CLONE_NEWNS;
	if (!strcmp(t, "cgroup")) return CLONE_NEWCGROUP;
#ifdef CLONE_NEWTIME
	if (!strcmp(t, "time")) return CLONE_NEWTIME;
#else
	if (!strcmp(t, "time")) return 0x00000080;
#endif
	return -1;
}

/* _BERTH_NSENTER="type:path,type:path,..." (user first, mnt last), _BERTH_SYNCFD=n,
 * _BERTH_UNSHARE=clone flags to unshare after the joins, _BERTH_EXEC=1 for
 * an exec's init, which then never reaches Go (see execinit.c) */
void berth_nsenter(void)
{
	const char *spec = getenv("_BERTH_NSENTER");
	const char *s = getenv("_BERTH_SYNCFD");
	char *buf, *tok, *save = NULL;
	int fds[MAXNS], types[MAXNS], n = 0, i, needfork = 0;
	char *paths[MAXNS];

	const char *cg = getenv("_BERTH_CGROUP_TASKS");
	const char *us = getenv("_BERTH_UNSHARE");

	if (spec == NULL)
		return;
	if (s != NULL)
		syncfd = atoi(s);
	/*
	 * Enter the container's v1 cgroups while still single-threaded and in
	 * the runtime's namespaces: writing "0" to a tasks file moves only the
	 * calling thread (here: the whole process) and, unlike a pid written to
	 * cgroup.procs by someone else, does not wait for an RCU grace period.
	 */
	if (cg != NULL && *cg) {
		char *cgs = strdup(cg), *p, *cs = NULL;
		for (p = strtok_r(cgs, ":", &cs); p != NULL; p = strtok_r(NULL, ":", &cs)) {
			int fd = open(p, O_WRONLY | O_CLOEXEC);
			if (fd < 0)
				fail("join cgroup", p, errno);
			if (write(fd, "0", 1) != 1)
				fail("join cgroup", p, errno);
			close(fd);
		}
		free(cgs);
	}
	buf = strdup(spec);
	for (tok = strtok_r(buf, ",", &save); tok != NULL && n < MAXNS; tok = strtok_r(NULL, ",", &save)) {
		char *colon = strchr(tok, ':');
		if (colon == NULL)
			fail("bad namespace spec", tok, EINVAL);
		*colon = 0;
		types[n] = nstype(tok);
		if (types[n] < 0)
			fail("unknown namespace type", tok, EINVAL);
		paths[n] = colon + 1;
		fds[n] = open(paths[n], O_RDONLY | O_CLOEXEC);
		if (fds[n] < 0)
			fail("open", paths[n], errno);
		n++;
	}
	for (i = 0; i < n; i++) {
		if (setns(fds[i], types[i]) < 0)
			fail("setns", paths[i], errno);
		close(fds[i]);
		if (types[i] == CLONE_NEWUSER) {
			if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)
				fail("become root in", paths[i], errno);
		}
		/* A joined pid namespace takes effect for children only; a joined
		 * time namespace at once (and a fork would be fatal if this
		 * process is pid 1 of a new pid namespace). */
		if (types[i] == CLONE_NEWPID)
			needfork = 1;
	}
	/*
	 * The namespaces to create once a user namespace has been joined, so
	 * that they belong to it (created by clone, they would belong to the
	 * runtime's and deny the container's root, e.g. sethostname).
	 */
	if (us != NULL && *us) {
		int flags = atoi(us);
		if (unshare(flags) < 0)
			fail("unshare", "", errno);
		if (flags & CLONE_NEWPID)
			needfork = 1;
	}
	if (needfork) {
		/*
		 * The child waits until the pid message is out: the runtime must
		 * read it first, or it could not tell whom to reap when the child
		 * fails at once (an exec's C init can), and a zombie left in the
		 * pid namespace keeps its pid 1 from ever exiting.
		 */
		int gate[2];
		char b;
		pid_t pid;
		if (pipe2(gate, O_CLOEXEC) < 0)
			fail("pipe", "", errno);
		pid = fork();
		if (pid < 0)
			fail("fork", "", errno);
		if (pid > 0) {
			if (syncfd >= 0)
				dprintf(syncfd, "{\"type\":\"pid\",\"pid\":%d,\"forked\":true}\n", pid);
			_exit(0);
		}
		close(gate[1]);
		while (read(gate[0], &b, 1) < 0 && errno == EINTR)
			;
		close(gate[0]);
	} else if (syncfd >= 0) {
		dprintf(syncfd, "{\"type\":\"pid\",\"pid\":%d,\"forked\":false}\n", getpid());
	}
	free(buf);
	if (getenv("_BERTH_EXEC") != NULL && syncfd >= 0)
		berth_exec_init(syncfd);
}
