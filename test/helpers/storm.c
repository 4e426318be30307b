// Open-loop connect storm for test/close (compiled at test time with cc).
//
//   storm <ipv4> <port> <connects per second> <max ms> <grace ms> <connect timeout ms> [<trace file>]
//
// Starts connections at a fixed rate whatever happens to earlier ones (open
// loop), until stdin reaches EOF or <max ms> passed. A connection still
// connecting after <connect timeout ms> is abandoned, as real clients do
// (its SYNs were dropped: overflow or the SYN gate); without that, SYN
// retransmissions (for two minutes) would pile up and exhaust the fds. Each
// connection sends "ping\n" once connected and reads until EOF, expecting
// "pong\n". Then the connections still in flight get <grace ms> to finish.
// Prints one JSON line:
//
//   attempted     connections started
//   established   connect() completed (the kernel finished the handshake)
//   answered      established, got "pong\n", then a clean EOF
//   refused       ECONNREFUSED before being established (allowed)
//   timedOut      ETIMEDOUT or the connect timeout before being established,
//                 or still connecting when the grace ran out (allowed: the
//                 SYN never got in)
//   resetEstablished  ECONNRESET / EPIPE after being established (a failure)
//   resetConnecting   ECONNRESET reported by connect() itself (a failure: a
//                     refused SYN reports ECONNREFUSED, so this one was
//                     established in the kernel and reset before we looked)
//   noAnswer      established, clean EOF without the answer (a failure)
//   stalled       established, still open when the grace ran out (a failure)
//   other         any other error: {"errno": count}
//
// With <trace file>, one line per connection is written there when it ends:
// "<started> <established> <ended> <outcome> <local port>", times in
// milliseconds of CLOCK_MONOTONIC (process.hrtime.bigint() / 1e6 in Node on
// Linux), <established> -1 when it never was, <outcome> one of the keys above
// or "other:<ERRNO>": each client can be placed on the server's timeline, and
// matched to the connection the server accepted by its port.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum state { FREE, CONNECTING, ESTABLISHED };

struct conn {
  enum state state;
  unsigned generation;
  int got;  // bytes of the answer matched so far
  int bad;  // received something other than the answer
  double started, established;
  int port;  // local port, when tracing
};

static struct conn *conns;
static int max_fds;
static int epfd;
static long attempted, established, answered, refused, timed_out, reset_established,
    reset_connecting, no_answer, stalled, inflight;
static long other[256];

// Connections in the order they started, for the connect timeout.
struct started {
  int fd;
  unsigned generation;
  double at;
};
static struct started *ring;
static long ring_head, ring_tail, ring_size;
static unsigned generations;
static FILE *trace;

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void traced(int fd, const char *outcome) {
  if (trace == NULL) return;
  fprintf(trace, "%.3f %.3f %.3f %s %d\n", conns[fd].started, conns[fd].established, now_ms(), outcome,
          conns[fd].port);
}

static void finish(int fd) {
  epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
  close(fd);
  conns[fd].state = FREE;
  inflight--;
}

static void count_error(int fd, int err) {
  int was_established = conns[fd].state == ESTABLISHED;
  if (err == ECONNRESET || err == EPIPE) {
    if (was_established) reset_established++;
    else reset_connecting++;
    traced(fd, was_established ? "resetEstablished" : "resetConnecting");
  } else if (!was_established && err == ECONNREFUSED) {
    refused++;
    traced(fd, "refused");
  } else if (!was_established && err == ETIMEDOUT) {
    timed_out++;
    traced(fd, "timedOut");
  } else {
    other[err & 0xff]++;
    if (trace != NULL) {
      char outcome[64];
      snprintf(outcome, sizeof(outcome), "other:%s", strerrorname_np(err) ? strerrorname_np(err) : "?");
      traced(fd, outcome);
    }
  }
  finish(fd);
}

static void start(struct sockaddr_in *addr) {
  if (ring_tail - ring_head == ring_size) return;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    other[errno & 0xff]++;
    return;
  }
  if (fd >= max_fds) {
    close(fd);
    other[EMFILE]++;
    return;
  }
  attempted++;
  inflight++;
  double t = now_ms();
  conns[fd] = (struct conn){CONNECTING, ++generations, 0, 0, t, -1, 0};
  ring[ring_tail++ % ring_size] = (struct started){fd, generations, t};
  struct epoll_event ev = {.events = EPOLLOUT, .data.fd = fd};
  epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
  if (connect(fd, (struct sockaddr *)addr, sizeof(*addr)) != 0 && errno != EINPROGRESS) {
    count_error(fd, errno);
    return;
  }
  if (trace != NULL) {
    struct sockaddr_in local;
    socklen_t len = sizeof(local);
    if (getsockname(fd, (struct sockaddr *)&local, &len) == 0) conns[fd].port = ntohs(local.sin_port);
  }
}

static void on_writable(int fd) {
  int err = 0;
  socklen_t len = sizeof(err);
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
  if (err != 0) {
    count_error(fd, err);
    return;
  }
  conns[fd].state = ESTABLISHED;
  conns[fd].established = now_ms();
  established++;
  if (send(fd, "ping\n", 5, MSG_NOSIGNAL) != 5) {
    count_error(fd, errno);
    return;
  }
  struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.fd = fd};
  epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev);
}

static void on_readable(int fd) {
  static const char answer[] = "pong\n";
  char buf[256];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n > 0) {
      for (ssize_t i = 0; i < n; i++) {
        if (conns[fd].got < 5 && buf[i] == answer[conns[fd].got]) conns[fd].got++;
        else conns[fd].bad = 1;
      }
      continue;
    }
    if (n == 0) {
      int ok = conns[fd].got == 5 && !conns[fd].bad;
      if (ok) answered++;
      else no_answer++;
      traced(fd, ok ? "answered" : "noAnswer");
      finish(fd);
      return;
    }
    if (errno == EAGAIN || errno == EINTR) return;
    count_error(fd, errno);
    return;
  }
}

static void abandon_slow_connects(double t, double timeout_ms) {
  while (ring_head < ring_tail) {
    struct started *s = &ring[ring_head % ring_size];
    if (t - s->at < timeout_ms) break;
    ring_head++;
    if (conns[s->fd].state == CONNECTING && conns[s->fd].generation == s->generation) {
      // The kernel may have completed the handshake (a SYN-ACK to the last
      // retransmitted SYN) with EPOLLOUT not read yet: that connection is
      // established, and closing it now would hand the server a connection
      // counted here as timed out.
      struct sockaddr_in peer;
      socklen_t len = sizeof(peer);
      if (getpeername(s->fd, (struct sockaddr *)&peer, &len) == 0) {
        on_writable(s->fd);
        continue;
      }
      timed_out++;
      traced(s->fd, "timedOut");
      finish(s->fd);
    }
  }
}

static int stdin_closed(void) {
  char buf[64];
  ssize_t n = read(0, buf, sizeof(buf));
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR);
}

int main(int argc, char **argv) {
  if (argc != 7 && argc != 8) {
    fprintf(stderr, "usage: storm <ipv4> <port> <rate> <max ms> <grace ms> <connect timeout ms> [<trace file>]\n");
    return 2;
  }
  if (argc == 8 && (trace = fopen(argv[7], "w")) == NULL) {
    perror(argv[7]);
    return 2;
  }
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
  inet_pton(AF_INET, argv[1], &addr.sin_addr);
  double rate = atof(argv[3]), max_ms = atof(argv[4]), grace_ms = atof(argv[5]),
         connect_timeout_ms = atof(argv[6]);

  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  max_fds = rl.rlim_cur > 65536 ? 65536 : (int)rl.rlim_cur;
  conns = calloc(max_fds, sizeof(*conns));
  // Entries leave the ring after the connect timeout: it holds about
  // rate × timeout of them (start() refuses to overrun it).
  ring_size = (long)(rate * connect_timeout_ms / 1000.0) * 4 + 4096;
  ring = calloc(ring_size, sizeof(*ring));
  epfd = epoll_create1(EPOLL_CLOEXEC);
  fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
  struct epoll_event in = {.events = EPOLLIN | EPOLLRDHUP, .data.fd = 0};
  epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &in);

  double begin = now_ms(), stop_at = begin + max_ms, give_up_at = 0;
  int stopping = 0;
  struct epoll_event events[256];
  for (;;) {
    double t = now_ms();
    if (!stopping && t >= stop_at) stopping = 1;
    if (stopping && give_up_at == 0) give_up_at = t + grace_ms;
    if (stopping && (inflight == 0 || t >= give_up_at)) break;
    abandon_slow_connects(t, connect_timeout_ms);
    if (!stopping) {
      long due = (long)((t - begin) * rate / 1000.0);
      while (attempted < due) start(&addr);
    }
    int n = epoll_wait(epfd, events, 256, 1);
    for (int i = 0; i < n; i++) {
      int fd = events[i].data.fd;
      if (fd == 0) {
        if (stdin_closed()) {
          stopping = 1;
          epoll_ctl(epfd, EPOLL_CTL_DEL, 0, NULL);
        }
        continue;
      }
      if (conns[fd].state == CONNECTING) on_writable(fd);
      else if (conns[fd].state == ESTABLISHED) on_readable(fd);
    }
  }
  for (int fd = 0; fd < max_fds; fd++) {
    if (conns[fd].state == CONNECTING) {
      timed_out++;
      traced(fd, "timedOut");
    } else if (conns[fd].state == ESTABLISHED) {
      stalled++;
      traced(fd, "stalled");
    }
  }
  if (trace != NULL) fclose(trace);
  printf("{\"attempted\":%ld,\"established\":%ld,\"answered\":%ld,\"refused\":%ld,\"timedOut\":%ld,"
         "\"resetEstablished\":%ld,\"resetConnecting\":%ld,\"noAnswer\":%ld,\"stalled\":%ld,\"other\":{",
         attempted, established, answered, refused, timed_out, reset_established, reset_connecting,
         no_answer, stalled);
  const char *sep = "";
  for (int e = 0; e < 256; e++) {
    if (other[e] == 0) continue;
    printf("%s\"%s\":%ld", sep, strerrorname_np(e) ? strerrorname_np(e) : "?", other[e]);
    sep = ",";
  }
  printf("}}\n");
  return 0;
}
