/* The lab's link delay: ssh's ProxyCommand for lab hosts when `ferry lab up --link-delay-ms N`.
 *
 *   link-relay DELAY_MS HOST PORT
 *
 * Connects to HOST:PORT and relays stdin -> socket and socket -> stdout, delivering every
 * chunk DELAY_MS after it arrived, in order, in each direction. It is a delay line, not a
 * bandwidth cap: chunks in flight overlap, so a burst costs DELAY_MS once, not per chunk,
 * as on a long link between separate machines. (The kernel here has no netem qdisc.)
 * Built by `ferry lab up` with the machine's cc, so it needs nothing but libc.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* Bytes read at once, and held at most per direction before reading stops (back-pressure
 * to the sender instead of unbounded memory). */
#define CHUNK_BYTES 65536
#define QUEUED_BYTES_CAP (8u << 20)
#define CONNECT_TIMEOUT_SECONDS 5

struct chunk {
    struct chunk *next;
    int64_t due_ms;
    size_t length, written;
    char data[];
};

struct direction {
    int in, out;
    int out_is_socket;
    int in_ended;  /* read end of file or an error: no more chunks will come */
    int finished;  /* everything delivered and the out side shut */
    struct chunk *head, *tail;
    size_t queued_bytes;
};

static int64_t now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void die(const char *what) {
    fprintf(stderr, "link-relay: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void set_nonblocking(int fd) {
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) die("fcntl");
}

static int connect_to(const char *host, const char *port) {
    struct addrinfo hints = {0}, *found, *a;
    hints.ai_socktype = SOCK_STREAM;
    int error = getaddrinfo(host, port, &hints, &found);
    if (error) {
        fprintf(stderr, "link-relay: %s:%s: %s\n", host, port, gai_strerror(error));
        exit(1);
    }
    int fd = -1;
    for (a = found; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd < 0) continue;
        /* Linux bounds a blocking connect by the send timeout. */
        struct timeval timeout = {CONNECT_TIMEOUT_SECONDS, 0};
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(found);
    if (fd < 0) die("connect");
    /* The relay decides when bytes leave; Nagle must not hold them longer. */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* Reads what is there into a chunk due `delay_ms` from now. */
static void take_input(struct direction *d, int64_t delay_ms) {
    struct chunk *c = malloc(sizeof *c + CHUNK_BYTES);
    if (!c) die("malloc");
    ssize_t n = read(d->in, c->data, CHUNK_BYTES);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        free(c);
        return;
    }
    if (n <= 0) {
        free(c);
        d->in_ended = 1;
        return;
    }
    c->next = NULL;
    c->due_ms = now_ms() + delay_ms;
    c->length = (size_t)n;
    c->written = 0;
    if (d->tail) d->tail->next = c; else d->head = c;
    d->tail = c;
    d->queued_bytes += (size_t)n;
}

/* Writes every chunk that is due, as far as the out side takes it. */
static void deliver_due(struct direction *d) {
    int64_t now = now_ms();
    while (d->head && d->head->due_ms <= now) {
        struct chunk *c = d->head;
        ssize_t n = write(d->out, c->data + c->written, c->length - c->written);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
        if (n < 0) exit(0); /* the reader went away: nothing left to relay to */
        c->written += (size_t)n;
        if (c->written < c->length) return;
        d->head = c->next;
        if (!d->head) d->tail = NULL;
        d->queued_bytes -= c->length;
        free(c);
    }
}

static void finish_if_done(struct direction *d) {
    if (d->finished || !d->in_ended || d->head) return;
    if (d->out_is_socket) {
        shutdown(d->out, SHUT_WR);
    } else {
        close(d->out);
    }
    d->finished = 1;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: link-relay DELAY_MS HOST PORT\n");
        return 2;
    }
    int64_t delay_ms = atoll(argv[1]);
    signal(SIGPIPE, SIG_IGN);
    int sock = connect_to(argv[2], argv[3]);
    set_nonblocking(sock);
    set_nonblocking(0);
    set_nonblocking(1);
    struct direction up = {.in = 0, .out = sock, .out_is_socket = 1};
    struct direction down = {.in = sock, .out = 1, .out_is_socket = 0};
    struct direction *directions[2] = {&up, &down};

    while (!(up.finished && down.finished)) {
        struct pollfd fds[4];
        struct direction *reads[4] = {0}, *writes[4] = {0};
        int count = 0;
        int timeout_ms = -1;
        int64_t now = now_ms();
        for (int i = 0; i < 2; i++) {
            struct direction *d = directions[i];
            if (d->finished) continue;
            if (!d->in_ended && d->queued_bytes < QUEUED_BYTES_CAP) {
                fds[count] = (struct pollfd){.fd = d->in, .events = POLLIN};
                reads[count++] = d;
            }
            if (d->head) {
                if (d->head->due_ms <= now) {
                    fds[count] = (struct pollfd){.fd = d->out, .events = POLLOUT};
                    writes[count++] = d;
                } else {
                    int wait_ms = (int)(d->head->due_ms - now);
                    if (timeout_ms < 0 || wait_ms < timeout_ms) timeout_ms = wait_ms;
                }
            }
        }
        if (poll(fds, count, timeout_ms) < 0 && errno != EINTR) die("poll");
        for (int i = 0; i < count; i++) {
            if (!fds[i].revents) continue;
            if (reads[i]) take_input(reads[i], delay_ms);
            if (writes[i]) deliver_due(writes[i]);
        }
        for (int i = 0; i < 2; i++) {
            deliver_due(directions[i]);
            finish_if_done(directions[i]);
        }
    }
    return 0;
}
