#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Keep in step with libct: fifoName, poststartMarker, ValidateID. */
#define FIFO "exec.fifo"
#define POSTSTART "poststart"

static int valid_id(const char *id)
{
	size_t n = strlen(id);
	if (n == 0 || n > 1024 || !strcmp(id, ".") || !strcmp(id, ".."))
		return 0;
	for (const char *p = id; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      *p == '_' || *p == '+' || *p == '-' || *p == '.'))
			return 0;
	return 1;
}

void berth_faststart(int argc, char **argv)
{
	const char *root = NULL, *id;
	char path[PATH_MAX];
	int i = 1, fd;

	for (; i < argc && !strncmp(argv[i], "--", 2); i++) {
		if (!strcmp(argv[i], "--root") && i + 1 < argc)
			root = argv[++i];
		else if ((!strcmp(argv[i], "--log") || !strcmp(argv[i], "--log-format")) && i + 1 < argc)
			i++;
		else
			return;
	}
	if (root == NULL || argc != i + 2 || strcmp(argv[i], "start") || !valid_id(argv[i + 1]))
		return;
	id = argv[i + 1];
	if (snprintf(path, sizeof(path), "%s/%s/" POSTSTART, root, id) >= (int)sizeof(path) || access(path, F_OK) == 0 ||
	    errno != ENOENT)
		return;
	snprintf(path, sizeof(path), "%s/%s/" FIFO, root, id);
	fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return;
	/*
	 * Our open lets the init's open for writing return; it writes one byte
	 * and execs. When we leave it to Go, fd stays open: an init that opens
	 * the fifo just then must not be writing into a fifo nobody reads.
	 */
	for (;;) {
		char b;
		ssize_t n = read(fd, &b, 1);
		if (n == 1)
			break;
		if (n == 0)
			return; /* no writer (yet, or any more): Go waits or tells why */
		if (errno == EAGAIN) {
			struct pollfd p = { .fd = fd, .events = POLLIN };
			poll(&p, 1, -1);
		} else if (errno != EINTR) {
			return;
		}
	}
	if (unlink(path) < 0) {
		fprintf(stderr, "berth-runtime: remove %s: %s\n", path, strerror(errno));
		_exit(1);
	}
	_exit(0);
}
