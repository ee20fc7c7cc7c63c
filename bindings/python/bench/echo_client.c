/* Closed-loop echo load generator for bench/echo.py.
 *
 *     echo_client PORT CONNS SIZE WARMUP_SECS SECS
 *     echo_client PORT CONNS SIZE WARMUP_TRIPS TRIPS sync
 *
 * Opens CONNS TCP connections to 127.0.0.1:PORT; each sends SIZE bytes, waits until the SIZE
 * bytes come back, and sends again. After WARMUP_SECS it prints "MEASURE" (the driver reads
 * the server's CPU times then), runs SECS more and prints "DONE <round trips> <seconds>"
 * for that second phase. With "sync" the phases are counted in round trips, and the client
 * waits for a line on stdin after "MEASURE" (the driver zeroes the server's instruction
 * counters then) and after "DONE" (the driver reads them) before going on. One thread,
 * epoll, non-blocking sockets, TCP_NODELAY. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct conn {
    int fd;
    size_t sent, got;
};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

int main(int argc, char **argv) {
    if (argc != 6 && !(argc == 7 && strcmp(argv[6], "sync") == 0)) {
        fprintf(stderr, "usage: %s PORT CONNS SIZE WARMUP_SECS SECS [sync]\n", argv[0]);
        return 2;
    }
    int sync = argc == 7;
    char line[64];
    int port = atoi(argv[1]), nconn = atoi(argv[2]);
    size_t size = (size_t)atol(argv[3]);
    double warmup = atof(argv[4]), secs = atof(argv[5]);
    char *out = malloc(size), *in = malloc(size);
    memset(out, 'x', size);
    struct conn *cs = calloc(nconn, sizeof *cs);
    int ep = epoll_create1(0);
    if (ep < 0) die("epoll_create1");
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < nconn; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) die("socket");
        if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) die("connect");
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        cs[i].fd = fd;
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (unsigned)i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl");
        if (send(fd, out, size, MSG_NOSIGNAL) != (ssize_t)size) die("send");
    }
    struct epoll_event evs[256];
    long long trips = 0;
    int measuring = 0;
    double t0 = now(), start = t0;
    for (;;) {
        double t = now();
        if (!measuring && (sync ? trips >= (long long)warmup : t - t0 >= warmup)) {
            measuring = 1;
            printf("MEASURE\n");
            fflush(stdout);
            if (sync && !fgets(line, sizeof line, stdin)) return 1;
            trips = 0;
            start = t = now();
        }
        if (measuring && (sync ? trips >= (long long)secs : t - start >= secs)) break;
        int n = epoll_wait(ep, evs, 256, 100);
        if (n < 0 && errno != EINTR) die("epoll_wait");
        for (int k = 0; k < n; k++) {
            struct conn *c = &cs[evs[k].data.u32];
            ssize_t r = recv(c->fd, in, size - c->got, MSG_DONTWAIT);
            if (r == 0) {
                fprintf(stderr, "server closed a connection\n");
                return 1;
            }
            if (r < 0) {
                if (errno == EAGAIN || errno == EINTR) continue;
                die("recv");
            }
            c->got += (size_t)r;
            if (c->got == size) {
                c->got = 0;
                trips++;
                if (send(c->fd, out, size, MSG_NOSIGNAL) != (ssize_t)size) die("send");
            }
        }
    }
    printf("DONE %lld %.6f\n", trips, now() - start);
    fflush(stdout);
    if (sync && !fgets(line, sizeof line, stdin)) return 1;
    for (int i = 0; i < nconn; i++) close(cs[i].fd);
    return 0;
}
