/* mcload: a small memcached text-protocol load generator for scripts/bench (which compiles it with
 * `cc -O2 -pthread` into its temporary directory; nothing else builds or installs it).
 *
 * It opens C connections to HOST:PORT (all connected before the clock starts), spreads them over T
 * threads (one epoll loop each), and drives exactly N requests in all, like redis-benchmark: each
 * connection claims up to P requests from a shared counter, writes them in one send, waits for all
 * P replies, and repeats. Requests:
 *
 *   get    get KEY\r\n
 *   set    set KEY 0 0 D\r\n<D bytes of 'x'>\r\n
 *   mget   get k1 k2 ... kK\r\n          (keys from -k, default k1..k10)
 *
 * KEY is "key:__rand_int__" (one fixed key), or with -r R "key:%012d" of a random number below R
 * (as redis-benchmark -r). Replies are framed completely (VALUE blocks by their byte count, up to
 * END; STORED; ERROR / CLIENT_ERROR / SERVER_ERROR lines): a get reply is complete at END\r\n.
 * Every VALUE is counted as a hit; a get or mget reply with fewer VALUEs than keys asked counts
 * its missing keys as misses; error lines and unexpected replies count as errors.
 *
 * Latency of a request is the time from the write of its batch to the arrival of the batch's last
 * reply (as redis-benchmark measures pipelined requests), in a 1-microsecond histogram.
 *
 * Output, one line on stdout:
 *   requests=N seconds=S rps=R avg_ms=A p50_ms=B p99_ms=C max_ms=D hits=H misses=M errors=E
 * Exit status: 0 when N replies arrived; 1 on bad usage; 2 on a connection error or a connection
 * closed by the server (the message goes to stderr); 3 when -s SECONDS passed first (hang).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HIST_US 200000 /* 1 us buckets up to 200 ms; later ones go to the last bucket */
#define MAX_KEYS 64

enum { T_GET, T_SET, T_MGET };

static const char *g_host = "127.0.0.1";
static int g_port = 11211, g_clients = 50, g_pipeline = 1, g_threads = 1, g_test = T_GET, g_datasize = 3;
static long g_requests = 100000, g_keyspace = 0;
static double g_deadline_s = 0;
static const char *g_keys[MAX_KEYS];
static int g_nkeys = 0;
static atomic_long g_claimed;
static atomic_int g_failed;   /* a connection error: every thread stops */
static atomic_int g_ready;    /* threads ready to start */
static atomic_int g_go;

struct conn {
    int fd;
    char *out;
    size_t out_len, out_off, out_cap;
    char *in;
    size_t in_len, in_cap;
    int inflight;   /* requests of the current batch still owed a reply */
    int batch;      /* size of the current batch */
    uint64_t sent_ns;
    unsigned seed;
};

struct thread {
    pthread_t tid;
    struct conn *conns;
    int nconns;
    uint32_t *hist;
    uint64_t hist_over_max_ns;
    long done, hits, misses, errors;
    long double lat_sum_us;
    uint64_t end_ns;
    char err[256];
};

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void usage(void) {
    fprintf(stderr,
            "usage: mcload [-h HOST] [-p PORT] [-c CLIENTS] [-n REQUESTS] [-P PIPELINE] [-t THREADS]\n"
            "              [-T get|set|mget] [-k k1,k2,...] [-r KEYSPACE] [-d DATASIZE] [-s TIMEOUT_S]\n");
    exit(1);
}

static void reserve(char **buf, size_t *cap, size_t need) {
    if (need <= *cap) return;
    size_t c = *cap ? *cap : 4096;
    while (c < need) c *= 2;
    char *p = realloc(*buf, c);
    if (!p) { perror("realloc"); exit(2); }
    *buf = p;
    *cap = c;
}

static void append_request(struct conn *c) {
    char key[40];
    if (g_test == T_MGET) {
        size_t need = c->out_len + 8;
        for (int i = 0; i < g_nkeys; i++) need += strlen(g_keys[i]) + 1;
        reserve(&c->out, &c->out_cap, need);
        char *p = c->out + c->out_len;
        memcpy(p, "get", 3), p += 3;
        for (int i = 0; i < g_nkeys; i++) {
            size_t l = strlen(g_keys[i]);
            *p++ = ' ';
            memcpy(p, g_keys[i], l), p += l;
        }
        memcpy(p, "\r\n", 2), p += 2;
        c->out_len = (size_t)(p - c->out);
        return;
    }
    if (g_keyspace > 0)
        snprintf(key, sizeof key, "key:%012ld", (long)(rand_r(&c->seed) % g_keyspace));
    else
        strcpy(key, "key:__rand_int__");
    if (g_test == T_GET) {
        reserve(&c->out, &c->out_cap, c->out_len + strlen(key) + 8);
        c->out_len += (size_t)sprintf(c->out + c->out_len, "get %s\r\n", key);
    } else {
        reserve(&c->out, &c->out_cap, c->out_len + strlen(key) + 48 + (size_t)g_datasize);
        c->out_len += (size_t)sprintf(c->out + c->out_len, "set %s 0 0 %d\r\n", key, g_datasize);
        memset(c->out + c->out_len, 'x', (size_t)g_datasize);
        c->out_len += (size_t)g_datasize;
        memcpy(c->out + c->out_len, "\r\n", 2);
        c->out_len += 2;
    }
}

/* Claims up to P requests; 0 when all N are claimed. */
static int claim(void) {
    long cur = atomic_load(&g_claimed);
    for (;;) {
        if (cur >= g_requests) return 0;
        long take = g_requests - cur < g_pipeline ? g_requests - cur : g_pipeline;
        if (atomic_compare_exchange_weak(&g_claimed, &cur, cur + take)) return (int)take;
    }
}

static int flush_out(struct thread *t, struct conn *c, int epfd) {
    while (c->out_off < c->out_len) {
        ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (w > 0) {
            c->out_off += (size_t)w;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
            epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
            return 0;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else {
            snprintf(t->err, sizeof t->err, "send: %s", strerror(errno));
            return -1;
        }
    }
    c->out_len = c->out_off = 0;
    return 0;
}

static int start_batch(struct thread *t, struct conn *c, int epfd) {
    int n = claim();
    c->batch = c->inflight = n;
    if (n == 0) return 0;
    for (int i = 0; i < n; i++) append_request(c);
    c->sent_ns = now_ns();
    return flush_out(t, c, epfd);
}

/* Frames one reply at in[0..len). Returns bytes consumed, or 0 when incomplete. */
static size_t parse_reply(struct thread *t, const char *in, size_t len) {
    size_t pos = 0;
    long values = 0;
    for (;;) {
        const char *eol = memmem(in + pos, len - pos, "\r\n", 2);
        if (!eol) return 0;
        size_t llen = (size_t)(eol - (in + pos));
        const char *line = in + pos;
        size_t next = pos + llen + 2;
        if (llen >= 6 && memcmp(line, "VALUE ", 6) == 0) {
            /* VALUE <key> <flags> <bytes> [<cas>] */
            char tmp[512];
            size_t l = llen < sizeof tmp - 1 ? llen : sizeof tmp - 1;
            memcpy(tmp, line, l);
            tmp[l] = 0;
            char *save = NULL, *tok = strtok_r(tmp, " ", &save);
            tok = strtok_r(NULL, " ", &save); /* key */
            tok = strtok_r(NULL, " ", &save); /* flags */
            tok = strtok_r(NULL, " ", &save); /* bytes */
            if (!tok) { t->errors++; return next; }
            size_t bytes = strtoul(tok, NULL, 10);
            if (len < next + bytes + 2) return 0;
            pos = next + bytes + 2;
            values++;
            continue;
        }
        if (llen == 3 && memcmp(line, "END", 3) == 0) {
            long want = g_test == T_MGET ? g_nkeys : 1;
            t->hits += values;
            if (values < want) t->misses += want - values;
            if (values > want || g_test == T_SET) t->errors++;
            return next;
        }
        if (values == 0 && llen == 6 && memcmp(line, "STORED", 6) == 0) {
            if (g_test != T_SET) t->errors++;
            return next;
        }
        /* ERROR, CLIENT_ERROR ..., SERVER_ERROR ..., NOT_STORED, or anything unexpected. */
        if (t->errors < 3) {
            size_t l = llen < 120 ? llen : 120;
            fprintf(stderr, "mcload: unexpected reply line: %.*s\n", (int)l, line);
        }
        t->errors++;
        return next;
    }
}

static void record(struct thread *t, uint64_t lat_ns, int count) {
    uint64_t us = lat_ns / 1000;
    if (us >= HIST_US) {
        us = HIST_US - 1;
        if (lat_ns > t->hist_over_max_ns) t->hist_over_max_ns = lat_ns;
    }
    t->hist[us] += (uint32_t)count;
    t->lat_sum_us += (long double)lat_ns / 1000.0L * count;
}

static int on_readable(struct thread *t, struct conn *c, int epfd) {
    for (;;) {
        reserve(&c->in, &c->in_cap, c->in_len + 16384);
        size_t space = c->in_cap - c->in_len;
        ssize_t r = recv(c->fd, c->in + c->in_len, space, 0);
        if (r > 0) {
            c->in_len += (size_t)r;
            if ((size_t)r < space) break; /* drained */
            continue;
        }
        if (r == 0) {
            snprintf(t->err, sizeof t->err, "connection closed by the server (%d replies owed)", c->inflight);
            return -1;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        if (errno == EINTR) continue;
        snprintf(t->err, sizeof t->err, "recv: %s", strerror(errno));
        return -1;
    }
    size_t off = 0;
    while (off < c->in_len) {
        size_t used = parse_reply(t, c->in + off, c->in_len - off);
        if (used == 0) break;
        off += used;
        if (c->inflight <= 0) {
            snprintf(t->err, sizeof t->err, "a reply that no request asked for");
            return -1;
        }
        if (--c->inflight == 0) {
            uint64_t now = now_ns();
            record(t, now - c->sent_ns, c->batch);
            t->done += c->batch;
            t->end_ns = now;
            if (start_batch(t, c, epfd) < 0) return -1;
        }
    }
    if (off) {
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
    }
    return 0;
}

static void *run_thread(void *arg) {
    struct thread *t = arg;
    int epfd = epoll_create1(0);
    for (int i = 0; i < t->nconns; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &t->conns[i]};
        epoll_ctl(epfd, EPOLL_CTL_ADD, t->conns[i].fd, &ev);
    }
    atomic_fetch_add(&g_ready, 1);
    while (!atomic_load(&g_go)) {
    }
    int active = 0;
    for (int i = 0; i < t->nconns; i++) {
        if (start_batch(t, &t->conns[i], epfd) < 0) goto fail;
    }
    struct epoll_event evs[256];
    for (;;) {
        active = 0;
        for (int i = 0; i < t->nconns; i++) active += t->conns[i].inflight > 0;
        if (!active || atomic_load(&g_failed)) break;
        int n = epoll_wait(epfd, evs, 256, 100);
        if (n < 0 && errno != EINTR) {
            snprintf(t->err, sizeof t->err, "epoll_wait: %s", strerror(errno));
            goto fail;
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (evs[i].events & EPOLLOUT) {
                if (flush_out(t, c, epfd) < 0) goto fail;
                if (c->out_len == 0) {
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
                    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
                }
            }
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                if (on_readable(t, c, epfd) < 0) goto fail;
            }
        }
    }
    close(epfd);
    return NULL;
fail:
    atomic_store(&g_failed, 1);
    close(epfd);
    return NULL;
}

static int connect_one(const struct addrinfo *ai) {
    int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0) return -1;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

static void *watchdog(void *arg) {
    (void)arg;
    struct timespec ts = {.tv_sec = (time_t)g_deadline_s,
                          .tv_nsec = (long)((g_deadline_s - (double)(time_t)g_deadline_s) * 1e9)};
    nanosleep(&ts, NULL);
    fprintf(stderr, "mcload: not done after %.0f s (%ld of %ld requests claimed): hang?\n", g_deadline_s,
            atomic_load(&g_claimed), g_requests);
    fflush(stderr);
    _exit(3);
}

int main(int argc, char **argv) {
    int opt;
    char *keylist = NULL;
    while ((opt = getopt(argc, argv, "h:p:c:n:P:t:T:k:r:d:s:")) != -1) {
        switch (opt) {
        case 'h': g_host = optarg; break;
        case 'p': g_port = atoi(optarg); break;
        case 'c': g_clients = atoi(optarg); break;
        case 'n': g_requests = atol(optarg); break;
        case 'P': g_pipeline = atoi(optarg); break;
        case 't': g_threads = atoi(optarg); break;
        case 'T':
            if (!strcmp(optarg, "get")) g_test = T_GET;
            else if (!strcmp(optarg, "set")) g_test = T_SET;
            else if (!strcmp(optarg, "mget")) g_test = T_MGET;
            else usage();
            break;
        case 'k': keylist = strdup(optarg); break;
        case 'r': g_keyspace = atol(optarg); break;
        case 'd': g_datasize = atoi(optarg); break;
        case 's': g_deadline_s = atof(optarg); break;
        default: usage();
        }
    }
    if (optind != argc || g_clients < 1 || g_requests < 1 || g_pipeline < 1 || g_threads < 1 || g_datasize < 0)
        usage();
    if (g_threads > g_clients) g_threads = g_clients;
    if (keylist) {
        char *save = NULL;
        for (char *k = strtok_r(keylist, ",", &save); k && g_nkeys < MAX_KEYS; k = strtok_r(NULL, ",", &save))
            g_keys[g_nkeys++] = k;
    } else {
        static char names[10][8];
        for (int i = 0; i < 10; i++) {
            snprintf(names[i], sizeof names[i], "k%d", i + 1);
            g_keys[g_nkeys++] = names[i];
        }
    }

    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
    char port[16];
    snprintf(port, sizeof port, "%d", g_port);
    int rc = getaddrinfo(g_host, port, &hints, &ai);
    if (rc) {
        fprintf(stderr, "mcload: %s: %s\n", g_host, gai_strerror(rc));
        return 2;
    }
    if (g_deadline_s > 0) {
        pthread_t w;
        pthread_create(&w, NULL, watchdog, NULL);
        pthread_detach(w);
    }
    struct conn *conns = calloc((size_t)g_clients, sizeof *conns);
    for (int i = 0; i < g_clients; i++) {
        conns[i].fd = connect_one(ai);
        if (conns[i].fd < 0) {
            fprintf(stderr, "mcload: connect %s:%d: %s\n", g_host, g_port, strerror(errno));
            return 2;
        }
        conns[i].seed = 0x9e3779b9u * (unsigned)(i + 1);
    }
    freeaddrinfo(ai);

    struct thread *th = calloc((size_t)g_threads, sizeof *th);
    for (int i = 0, first = 0; i < g_threads; i++) {
        int n = g_clients / g_threads + (i < g_clients % g_threads);
        th[i].conns = conns + first;
        th[i].nconns = n;
        th[i].hist = calloc(HIST_US, sizeof(uint32_t));
        first += n;
        pthread_create(&th[i].tid, NULL, run_thread, &th[i]);
    }
    while (atomic_load(&g_ready) < g_threads) {
    }
    uint64_t start = now_ns();
    atomic_store(&g_go, 1);
    long done = 0, hits = 0, misses = 0, errors = 0;
    uint64_t end = start, over_max = 0;
    long double lat_sum = 0;
    int failed = 0;
    for (int i = 0; i < g_threads; i++) {
        pthread_join(th[i].tid, NULL);
        if (th[i].err[0]) {
            fprintf(stderr, "mcload: %s\n", th[i].err);
            failed = 1;
        }
        done += th[i].done, hits += th[i].hits, misses += th[i].misses, errors += th[i].errors;
        lat_sum += th[i].lat_sum_us;
        if (th[i].end_ns > end) end = th[i].end_ns;
        if (th[i].hist_over_max_ns > over_max) over_max = th[i].hist_over_max_ns;
        if (i) {
            for (int b = 0; b < HIST_US; b++) th[0].hist[b] += th[i].hist[b];
        }
    }
    double secs = (double)(end - start) / 1e9;
    double p50 = 0, p99 = 0, mx = 0;
    long seen = 0;
    int got50 = 0, got99 = 0;
    for (int b = 0; b < HIST_US; b++) {
        if (!th[0].hist[b]) continue;
        seen += th[0].hist[b];
        if (!got50 && seen * 2 >= done) p50 = (b + 1) / 1000.0, got50 = 1;
        if (!got99 && seen * 100 >= done * 99) p99 = (b + 1) / 1000.0, got99 = 1;
        mx = (b + 1) / 1000.0;
    }
    if (over_max) mx = (double)over_max / 1e6;
    printf("requests=%ld seconds=%.6f rps=%.2f avg_ms=%.3f p50_ms=%.3f p99_ms=%.3f max_ms=%.3f hits=%ld misses=%ld "
           "errors=%ld\n",
           done, secs, secs > 0 ? (double)done / secs : 0.0, done ? (double)(lat_sum / done) / 1000.0 : 0.0, p50, p99,
           mx, hits, misses, errors);
    fflush(stdout);
    return failed || done != g_requests ? 2 : 0;
}
