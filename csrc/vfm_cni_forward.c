/* vfmac-cni: forward one CNI call to the node's pyvfmac daemon, or run it here.
 *
 * The container runtime runs this for every ADD, DEL, CHECK, GC, STATUS and VERSION. It sends
 * its environment and stdin to the daemon's unix socket (pyvfmac/cni/server.py has the wire
 * format) and relays the answer: stdout, the log lines on stderr, the exit status. When no
 * daemon answers -- the socket is absent, refuses, its backlog is full, or the daemon dies
 * before answering -- it runs the call in this process as before: it execs the Python plugin
 * (pyvfmac.cni.main) with stdin replayed from a memfd. A daemon that accepted the call but does
 * not answer within the bound (PYVFMAC_CNI_TIMEOUT seconds, default 120) may still be working
 * on it: that is CNI error 11 (try again), never a second run.
 *
 * Built by meson with the interpreter's path (VFM_PYTHON); every syscall result is checked.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#ifndef VFM_PYTHON
#error "VFM_PYTHON (the interpreter pyvfmac is installed for) must be defined"
#endif

#define DEFAULT_SOCKET "/run/pyvfmac/cni.sock"
#define MAX_STDIN (16u << 20)
#define CONNECT_MS 1000

extern char **environ;

struct buf {
	char *data;
	size_t len;
	size_t cap;
};

static int buf_reserve(struct buf *b, size_t more)
{
	size_t cap = b->cap ? b->cap : 4096;
	char *p;

	if (b->len + more <= b->cap)
		return 0;
	while (cap < b->len + more)
		cap *= 2;
	p = realloc(b->data, cap);
	if (p == NULL)
		return -ENOMEM;
	b->data = p;
	b->cap = cap;
	return 0;
}

static int buf_put(struct buf *b, const void *data, size_t len)
{
	int rc = buf_reserve(b, len);

	if (rc < 0)
		return rc;
	memcpy(b->data + b->len, data, len);
	b->len += len;
	return 0;
}

/* All of fd into b, at most max bytes: 0 or -errno. */
static int read_fd(int fd, struct buf *b, size_t max)
{
	for (;;) {
		ssize_t n;
		int rc = buf_reserve(b, 65536);

		if (rc < 0)
			return rc;
		n = read(fd, b->data + b->len, b->cap - b->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return 0;
		b->len += (size_t)n;
		if (b->len > max)
			return -EFBIG;
	}
}

static int write_all(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, data, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

static long now_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
		return 0;
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Wait until fd is ready for events, at most ms: 1 ready, 0 timed out, -errno. */
static int wait_fd(int fd, short events, long ms)
{
	struct pollfd p = { .fd = fd, .events = events };
	long end = now_ms() + ms;

	for (;;) {
		long left = end - now_ms();
		int n;

		if (left < 0)
			left = 0;
		n = poll(&p, 1, (int)(left > 2147483647L ? 2147483647L : left));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		return n;
	}
}

/* A connected socket to the daemon, or -errno (no daemon: the caller runs the call itself). */
static int daemon_connect(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd, rc;
	int err = 0;
	socklen_t len = sizeof(err);

	if (strlen(path) >= sizeof(addr.sun_path))
		return -ENAMETOOLONG;
	strcpy(addr.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		rc = -errno;
		if (rc != -EINPROGRESS && rc != -EAGAIN)
			goto fail;
		/* a full backlog: wait a little for a place, then give up on the daemon */
		rc = wait_fd(fd, POLLOUT, CONNECT_MS);
		if (rc <= 0) {
			rc = rc < 0 ? rc : -ETIMEDOUT;
			goto fail;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0) {
			rc = err ? -err : -errno;
			goto fail;
		}
	}
	/* connected: blocking from here (the answer is awaited with poll, with its own bound) */
	rc = fcntl(fd, F_GETFL);
	if (rc < 0 || fcntl(fd, F_SETFL, rc & ~O_NONBLOCK) < 0) {
		rc = -errno;
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return rc;
}

/* The request: environ as NUL-terminated KEY=VALUE strings, one more NUL, stdin. */
static int build_request(struct buf *req, const struct buf *in)
{
	char **e;
	int rc;

	for (e = environ; *e != NULL; e++) {
		rc = buf_put(req, *e, strlen(*e) + 1);
		if (rc < 0)
			return rc;
	}
	rc = buf_put(req, "", 1);
	if (rc < 0)
		return rc;
	return buf_put(req, in->data, in->len);
}

/* Read the whole answer until the daemon closes, at most timeout_ms: 0, -ETIMEDOUT, -errno. */
static int read_answer(int fd, struct buf *ans, long timeout_ms)
{
	long end = now_ms() + timeout_ms;

	for (;;) {
		ssize_t n;
		int rc = wait_fd(fd, POLLIN, end - now_ms());

		if (rc < 0)
			return rc;
		if (rc == 0)
			return -ETIMEDOUT;
		rc = buf_reserve(ans, 65536);
		if (rc < 0)
			return rc;
		n = recv(fd, ans->data + ans->len, ans->cap - ans->len, 0);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return 0;
		ans->len += (size_t)n;
	}
}

/* Relay "<status> <out> <log>\n<out><log>": the exit status, or -EPROTO for no whole answer
 * (the daemon died on the way). */
static int relay_answer(const struct buf *ans)
{
	const char *nl = memchr(ans->data, '\n', ans->len);
	unsigned long status, out, log;
	size_t head;
	int rc;

	if (nl == NULL || sscanf(ans->data, "%lu %lu %lu", &status, &out, &log) != 3)
		return -EPROTO;
	head = (size_t)(nl - ans->data) + 1;
	if (status > 255 || ans->len != head + out + log)
		return -EPROTO;
	rc = write_all(STDOUT_FILENO, ans->data + head, out);
	if (rc == 0)
		rc = write_all(STDERR_FILENO, ans->data + head + out, log);
	return rc < 0 ? rc : (int)status;
}

static long timeout_ms(void)
{
	const char *text = getenv("PYVFMAC_CNI_TIMEOUT");
	char *end;
	long s;

	if (text == NULL || *text == '\0')
		return 120000L;
	s = strtol(text, &end, 10);
	return (*end != '\0' || s <= 0 || s > 86400) ? 120000L : s * 1000L;
}

/* The CNI error a call gets when the daemon took it and did not answer in time. */
static int answer_timeout(long ms)
{
	char msg[256];
	int n = snprintf(msg, sizeof(msg),
			 "{\"cniVersion\": \"1.1.0\", \"code\": 11, \"msg\": \"vfmac-cni: the "
			 "pyvfmac daemon did not answer within %ld s; try again\"}\n", ms / 1000);

	if (n > 0 && (size_t)n < sizeof(msg))
		(void)write_all(STDOUT_FILENO, msg, (size_t)n);
	return 1;
}

/* Run the call in this process: the Python plugin, stdin replayed from a memfd. */
static int run_here(const struct buf *in)
{
	int fd = memfd_create("vfmac-cni-stdin", MFD_CLOEXEC);
	char *argv[] = { (char *)VFM_PYTHON, (char *)"-c",
			 (char *)"from pyvfmac.cni.main import main; main()", NULL };

	if (fd < 0)
		return -errno;
	if (write_all(fd, in->data, in->len) < 0 || lseek(fd, 0, SEEK_SET) < 0 ||
	    dup2(fd, STDIN_FILENO) < 0) {
		int rc = -errno;

		close(fd);
		return rc;
	}
	close(fd);
	execv(VFM_PYTHON, argv);
	return -errno;
}

int main(void)
{
	struct buf in = { 0 }, req = { 0 }, ans = { 0 };
	const char *path = getenv("PYVFMAC_CNI_SOCKET");
	int fd, rc;

	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) /* a daemon gone mid-request: EPIPE, not death */
		return 1;
	rc = read_fd(STDIN_FILENO, &in, MAX_STDIN);
	if (rc < 0) {
		fprintf(stderr, "vfmac-cni: cannot read stdin: %s\n", strerror(-rc));
		return 1;
	}
	fd = daemon_connect(path != NULL && *path != '\0' ? path : DEFAULT_SOCKET);
	if (fd >= 0) {
		rc = build_request(&req, &in);
		if (rc == 0)
			rc = write_all(fd, req.data, req.len);
		if (rc == 0 && shutdown(fd, SHUT_WR) < 0)
			rc = -errno;
		if (rc == 0) {
			long ms = timeout_ms();

			rc = read_answer(fd, &ans, ms);
			close(fd);
			if (rc == -ETIMEDOUT)
				return answer_timeout(ms);
			/* a whole answer counts even if the daemon reset the connection after it */
			rc = relay_answer(&ans);
			if (rc >= 0)
				return rc;
			if (rc != -EPROTO)
				return 1; /* stdout or stderr could not be written: nothing to redo */
		} else {
			close(fd);
		}
	}
	rc = run_here(&in); /* no daemon, or it died before answering */
	fprintf(stderr, "vfmac-cni: cannot run %s: %s\n", VFM_PYTHON, strerror(-rc));
	return 1;
}
