/*
 * The privcmd bridge: an LD_PRELOAD library that stands in for Linux's Xen privcmd driver,
 * so that a program linked against the real libxencall (libxenctrl, libxl, xl) issues its
 * hypercalls to an emulated host held by a host server.
 *
 * It emulates the two devices libxencall opens (tools/libs/call/linux.c):
 *   /dev/xen/privcmd (and /proc/xen/privcmd): IOCTL_PRIVCMD_HYPERCALL is forwarded to the
 *     server; every other privcmd ioctl fails with ENOTTY, as on a kernel without it, so
 *     libxenforeignmemory and libxendevicemodel fall back; mmap (foreign mappings) fails
 *     with ENODEV.
 *   /dev/xen/hypercall: mmap gives hypercall buffers, shared anonymous memory, inherited
 *     by a forked child as the driver's shared mappings are; munmap ends them. madvise
 *     needs no stand-in: the buffers are ordinary memory to the kernel.
 * A hypercall sends the op, the argument words and the bytes of every live hypercall buffer
 * of this process, and writes back what the hypervisor wrote (the framing is documented in
 * xenctrl/wire.py; this file follows it). The emulated files are /dev/null descriptors
 * remembered here, so close, dup2 and exec behave as for any file.
 *
 * XENEMU_SERVER names the server's socket (unset: the bridge does nothing) and XENEMU_DOMID
 * the calling domain (default 0). Each process has its own connection: a forked child
 * connects anew on its first hypercall. One process's hypercalls go one at a time.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

/* The wire protocol (xenctrl/wire.py). */
#define WIRE_VERSION 1
#define WIRE_HELLO 1
#define WIRE_HYPERCALL 2
#define WIRE_OK 0x81
#define WIRE_RESULT 0x82
#define WIRE_ERROR 0xFF
#define WIRE_ARGS 6
#define WIRE_MAX_BODY (1u << 28)

/* The privcmd ABI (Linux include/uapi/xen/privcmd.h). */
struct privcmd_hypercall {
    uint64_t op;
    uint64_t arg[5];
};
#define IOCTL_PRIVCMD_HYPERCALL _IOC(_IOC_NONE, 'P', 0, sizeof(struct privcmd_hypercall))

#define PAGE 4096UL
#define MAX_ERRNO 4095 /* the kernel's error range, as glibc tells errors from results */

enum kind { NOT_OURS, PRIVCMD, HYPERCALL_BUF };

struct buffer {
    uintptr_t addr;
    size_t size;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER; /* everything below */
static unsigned char *kinds;                             /* by fd */
static size_t nkinds;
static struct buffer *buffers; /* live hypercall buffers, unordered */
static size_t nbuffers, capbuffers;
static int conn = -1; /* this process's connection to the server */
static dev_t conn_dev; /* ... and what it is, to notice a descriptor closed behind our */
static ino_t conn_ino; /* back (close_range, closefrom) and reused for another file */
static int lost;       /* the connection failed: said so once */

static int (*real_open)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_close)(int);
static int (*real_dup2)(int, int);
static int (*real_dup3)(int, int, int);
static int (*real_ioctl)(int, unsigned long, ...);
static void *(*real_mmap)(void *, size_t, int, int, int, off_t);
static int (*real_munmap)(void *, size_t);

static void say(const char *fmt, ...)
{
    char line[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if (n > (int)sizeof(line) - 2)
        n = sizeof(line) - 2;
    line[n++] = '\n';
    if (write(2, line, n) < 0)
        return;
}

static void *next(const char *name)
{
    void *f = dlsym(RTLD_NEXT, name);
    if (!f) {
        say("xenemu bridge: libc has no %s", name);
        abort();
    }
    return f;
}

static void before_fork(void) { pthread_mutex_lock(&lock); }
static void after_fork_parent(void) { pthread_mutex_unlock(&lock); }
static void after_fork_child(void)
{
    /* The parent's connection is its own: the child connects anew when it calls. */
    if (conn >= 0)
        real_close(conn);
    conn = -1;
    lost = 0;
    pthread_mutex_unlock(&lock);
}

/* Resolved on first use: another library's constructor may open a file before ours runs. */
static void resolve(void)
{
    if (real_munmap)
        return;
    real_open = next("open");
    real_openat = next("openat");
    real_close = next("close");
    real_dup2 = next("dup2");
    real_dup3 = next("dup3");
    real_ioctl = next("ioctl");
    real_mmap = next("mmap");
    real_munmap = next("munmap");
}

__attribute__((constructor)) static void init(void)
{
    resolve();
    pthread_atfork(before_fork, after_fork_parent, after_fork_child);
}

static int active(void) { return getenv("XENEMU_SERVER") != NULL; }

/* -- descriptors ------------------------------------------------------------------------ */

static enum kind kind_of(int fd)
{
    return fd >= 0 && (size_t)fd < nkinds ? (enum kind)kinds[fd] : NOT_OURS;
}

static int set_kind(int fd, enum kind k)
{
    if ((size_t)fd >= nkinds) {
        size_t n = nkinds ? nkinds : 64;
        unsigned char *grown;
        if (k == NOT_OURS)
            return 0;
        while (n <= (size_t)fd)
            n *= 2;
        grown = realloc(kinds, n);
        if (!grown)
            return -1;
        memset(grown + nkinds, 0, n - nkinds);
        kinds = grown;
        nkinds = n;
    }
    kinds[fd] = k;
    return 0;
}

/* -- the connection ---------------------------------------------------------------------- */

static int send_all(const struct iovec *iov, int n)
{
    struct iovec local[64];
    while (n > 0) {
        int batch = n < 64 ? n : 64;
        struct msghdr msg = {0};
        ssize_t done;
        memcpy(local, iov, batch * sizeof(*iov));
        msg.msg_iov = local;
        msg.msg_iovlen = batch;
        while (batch > 0) {
            done = sendmsg(conn, &msg, MSG_NOSIGNAL);
            if (done < 0) {
                if (errno == EINTR)
                    continue;
                return -1;
            }
            while (batch > 0 && (size_t)done >= msg.msg_iov->iov_len) {
                done -= msg.msg_iov->iov_len;
                msg.msg_iov++;
                msg.msg_iovlen--;
                batch--;
                iov++;
                n--;
            }
            if (batch > 0) {
                msg.msg_iov->iov_base = (char *)msg.msg_iov->iov_base + done;
                msg.msg_iov->iov_len -= done;
            }
        }
    }
    return 0;
}

static int recv_all(void *to, size_t size)
{
    char *p = to;
    while (size > 0) {
        ssize_t got = recv(conn, p, size, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            if (got == 0)
                errno = ECONNRESET;
            return -1;
        }
        p += got;
        size -= got;
    }
    return 0;
}

static int skip(size_t size)
{
    char sink[4096];
    while (size > 0) {
        size_t n = size < sizeof(sink) ? size : sizeof(sink);
        if (recv_all(sink, n) < 0)
            return -1;
        size -= n;
    }
    return 0;
}

static void hang_up(const char *why)
{
    if (!lost)
        say("xenemu bridge: lost the host server at %s: %s", getenv("XENEMU_SERVER"), why);
    lost = 1;
    real_close(conn);
    conn = -1;
}

/* An ERROR reply: say its line, drop the connection. */
static void server_error(uint32_t length)
{
    char text[256];
    size_t n = length < sizeof(text) - 1 ? length : sizeof(text) - 1;
    if (recv_all(text, n) == 0) {
        text[n] = '\0';
        say("xenemu bridge: the host server says: %s", text);
    }
    lost = 1;
    real_close(conn);
    conn = -1;
}

static int connect_server(void)
{
    const char *path = getenv("XENEMU_SERVER");
    const char *domid = getenv("XENEMU_DOMID");
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    uint32_t hello[4] = {WIRE_HELLO, 8, WIRE_VERSION, domid ? (uint32_t)strtoul(domid, 0, 0) : 0};
    uint32_t reply[2];
    struct iovec iov = {hello, sizeof(hello)};
    int saved;

    if (conn >= 0) {
        struct stat st;
        if (fstat(conn, &st) == 0 && st.st_dev == conn_dev && st.st_ino == conn_ino)
            return 0;
        conn = -1; /* not ours any more: leave it to its new owner */
    }
    if (strlen(path) >= sizeof(sa.sun_path)) {
        say("xenemu bridge: socket path too long: %s", path);
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(sa.sun_path, path);
    conn = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (conn < 0)
        return -1;
    if (connect(conn, (struct sockaddr *)&sa, sizeof(sa)) < 0 || send_all(&iov, 1) < 0 ||
        recv_all(reply, sizeof(reply)) < 0) {
        saved = errno;
        say("xenemu bridge: cannot reach the host server at %s: %s", path, strerror(saved));
        real_close(conn);
        conn = -1;
        errno = saved;
        return -1;
    }
    if (reply[0] == WIRE_ERROR) {
        server_error(reply[1]);
        errno = ECONNREFUSED;
        return -1;
    }
    if (reply[0] != WIRE_OK || skip(reply[1]) < 0) {
        hang_up("unexpected answer to HELLO");
        errno = EPROTO;
        return -1;
    }
    {
        struct stat st;
        fstat(conn, &st);
        conn_dev = st.st_dev;
        conn_ino = st.st_ino;
    }
    lost = 0;
    return 0;
}

/* -- hypercall buffers --------------------------------------------------------------------- */

static int add_buffer(void *addr, size_t size)
{
    if (nbuffers == capbuffers) {
        size_t n = capbuffers ? 2 * capbuffers : 16;
        struct buffer *grown = realloc(buffers, n * sizeof(*buffers));
        if (!grown)
            return -1;
        buffers = grown;
        capbuffers = n;
    }
    buffers[nbuffers++] = (struct buffer){(uintptr_t)addr, size};
    return 0;
}

/* munmap of [lo, hi): what is left of each buffer stays live. */
static void cut_buffers(uintptr_t lo, uintptr_t hi)
{
    size_t i = 0;
    while (i < nbuffers) {
        struct buffer b = buffers[i];
        uintptr_t end = b.addr + b.size;
        if (end <= lo || b.addr >= hi) {
            i++;
            continue;
        }
        buffers[i] = buffers[--nbuffers];
        if (b.addr < lo)
            add_buffer((void *)b.addr, lo - b.addr);
        if (end > hi)
            add_buffer((void *)hi, end - hi);
    }
}

static int inside_a_buffer(uint64_t addr, uint64_t size)
{
    for (size_t i = 0; i < nbuffers; i++)
        if (addr >= buffers[i].addr && size <= buffers[i].size &&
            addr - buffers[i].addr <= buffers[i].size - size)
            return 1;
    return 0;
}

/* -- the hypercall --------------------------------------------------------------------------- */

struct wire_call {
    uint32_t kind, length;
    uint64_t op, args[WIRE_ARGS];
    uint32_t nr_ranges, zero;
};

static long forward(const struct privcmd_hypercall *call)
{
    struct wire_call head = {WIRE_HYPERCALL, 0, call->op, {0}, (uint32_t)nbuffers, 0};
    uint64_t (*ranges)[2] = calloc(nbuffers ? nbuffers : 1, sizeof(*ranges));
    struct iovec *iov = calloc(1 + 2 * nbuffers, sizeof(*iov));
    uint64_t body = sizeof(head) - 8;
    struct {
        uint32_t kind, length;
        int64_t result;
        uint32_t nr_ranges, notice_length;
    } reply;
    long rc = -EIO;

    if (!ranges || !iov) {
        rc = -ENOMEM;
        goto out;
    }
    if (connect_server() < 0) {
        rc = -errno;
        goto out;
    }
    memcpy(head.args, call->arg, sizeof(call->arg));
    iov[0] = (struct iovec){&head, sizeof(head)};
    for (size_t i = 0; i < nbuffers; i++) {
        ranges[i][0] = buffers[i].addr;
        ranges[i][1] = buffers[i].size;
        iov[1 + 2 * i] = (struct iovec){ranges[i], sizeof(ranges[i])};
        iov[2 + 2 * i] = (struct iovec){(void *)buffers[i].addr, buffers[i].size};
        body += sizeof(ranges[i]) + buffers[i].size;
    }
    if (body > WIRE_MAX_BODY) {
        rc = -ENOMEM;
        goto out;
    }
    head.length = (uint32_t)body;
    if (send_all(iov, 1 + 2 * nbuffers) < 0 || recv_all(&reply, 8) < 0) {
        hang_up(strerror(errno));
        goto out;
    }
    if (reply.kind == WIRE_ERROR) {
        server_error(reply.length);
        goto out;
    }
    if (reply.kind != WIRE_RESULT || reply.length < 16 || recv_all(&reply.result, 16) < 0) {
        hang_up("unexpected answer to a hypercall");
        goto out;
    }
    for (uint32_t i = 0; i < reply.nr_ranges; i++) {
        uint64_t span[2];
        if (recv_all(span, sizeof(span)) < 0)
            goto broken;
        if (!inside_a_buffer(span[0], span[1])) { /* never from a well-behaved server */
            hang_up("it wrote outside the buffers sent");
            goto out;
        }
        if (recv_all((void *)(uintptr_t)span[0], span[1]) < 0)
            goto broken;
    }
    if (reply.notice_length) {
        char notice[512];
        size_t n = reply.notice_length < sizeof(notice) - 1 ? reply.notice_length
                                                            : sizeof(notice) - 1;
        if (recv_all(notice, n) < 0 || skip(reply.notice_length - n) < 0)
            goto broken;
        notice[n] = '\0';
        say("xenemu: %s", notice);
    }
    rc = reply.result;
    goto out;
broken:
    hang_up(strerror(errno));
out:
    free(ranges);
    free(iov);
    return rc;
}

/* -- the interposed libc calls ----------------------------------------------------------- */

static enum kind device(const char *path)
{
    if (!path || !active())
        return NOT_OURS;
    if (!strcmp(path, "/dev/xen/privcmd") || !strcmp(path, "/proc/xen/privcmd"))
        return PRIVCMD;
    if (!strcmp(path, "/dev/xen/hypercall"))
        return HYPERCALL_BUF;
    return NOT_OURS;
}

/* Open an emulated device: a /dev/null descriptor remembered as the device. */
static int open_device(enum kind k, int flags)
{
    int fd, saved;

    pthread_mutex_lock(&lock);
    if (k == PRIVCMD && connect_server() < 0) {
        saved = errno;
        pthread_mutex_unlock(&lock);
        errno = saved;
        return -1;
    }
    fd = real_open("/dev/null", O_RDWR | (flags & O_CLOEXEC));
    if (fd >= 0 && set_kind(fd, k) < 0) {
        real_close(fd);
        fd = -1;
        errno = ENOMEM;
    }
    saved = errno;
    pthread_mutex_unlock(&lock);
    errno = saved;
    return fd;
}

static mode_t mode_arg(int flags, va_list ap)
{
    return (flags & (O_CREAT | O_TMPFILE)) ? va_arg(ap, mode_t) : 0;
}

int open(const char *path, int flags, ...)
{
    resolve();
    enum kind k = device(path);
    va_list ap;
    mode_t mode;

    if (k != NOT_OURS)
        return open_device(k, flags);
    va_start(ap, flags);
    mode = mode_arg(flags, ap);
    va_end(ap);
    return real_open(path, flags, mode);
}

int openat(int dirfd, const char *path, int flags, ...)
{
    resolve();
    enum kind k = device(path); /* only absolute names match */
    va_list ap;
    mode_t mode;

    if (k != NOT_OURS)
        return open_device(k, flags);
    va_start(ap, flags);
    mode = mode_arg(flags, ap);
    va_end(ap);
    return real_openat(dirfd, path, flags, mode);
}

int open64(const char *path, int flags, ...) __attribute__((alias("open")));
int openat64(int dirfd, const char *path, int flags, ...) __attribute__((alias("openat")));

/* _FORTIFY_SOURCE's checked forms. */
int __open_2(const char *path, int flags) { return open(path, flags); }
int __open64_2(const char *path, int flags) { return open(path, flags); }
int __openat_2(int dirfd, const char *path, int flags) { return openat(dirfd, path, flags); }
int __openat64_2(int dirfd, const char *path, int flags) { return openat(dirfd, path, flags); }

int close(int fd)
{
    resolve();
    pthread_mutex_lock(&lock);
    set_kind(fd, NOT_OURS);
    if (fd == conn)
        conn = -1; /* the program closed every descriptor: connect again when needed */
    pthread_mutex_unlock(&lock);
    return real_close(fd);
}

static int duplicated(int oldfd, int newfd, int rc)
{
    if (rc >= 0 && oldfd != newfd) {
        pthread_mutex_lock(&lock);
        if (newfd == conn)
            conn = -1;
        set_kind(newfd, kind_of(oldfd));
        pthread_mutex_unlock(&lock);
    }
    return rc;
}

int dup2(int oldfd, int newfd)
{
    resolve();
    return duplicated(oldfd, newfd, real_dup2(oldfd, newfd));
}

int dup3(int oldfd, int newfd, int flags)
{
    resolve();
    return duplicated(oldfd, newfd, real_dup3(oldfd, newfd, flags));
}

int ioctl(int fd, unsigned long request, ...)
{
    resolve();
    va_list ap;
    void *arg;
    enum kind k;
    long rc;

    va_start(ap, request);
    arg = va_arg(ap, void *);
    va_end(ap);
    pthread_mutex_lock(&lock);
    k = kind_of(fd);
    if (k == NOT_OURS) {
        pthread_mutex_unlock(&lock);
        return real_ioctl(fd, request, arg);
    }
    if (k != PRIVCMD || request != IOCTL_PRIVCMD_HYPERCALL) {
        pthread_mutex_unlock(&lock);
        errno = ENOTTY; /* privcmd without the ioctl: the libraries fall back */
        return -1;
    }
    rc = forward(arg);
    pthread_mutex_unlock(&lock);
    if (rc < 0 && rc >= -MAX_ERRNO) {
        errno = (int)-rc;
        return -1;
    }
    return (int)rc; /* the syscall's long, narrowed by ioctl(2)'s int return */
}

void *mmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset)
{
    resolve();
    enum kind k;
    void *p;

    pthread_mutex_lock(&lock);
    k = kind_of(fd);
    pthread_mutex_unlock(&lock);
    if (k == NOT_OURS || flags & MAP_ANONYMOUS)
        return real_mmap(addr, length, prot, flags, fd, offset);
    if (k == PRIVCMD) {
        errno = ENODEV; /* no foreign mappings: the model has no page contents */
        return MAP_FAILED;
    }
    if (!(flags & MAP_SHARED) || offset != 0 || length == 0) {
        errno = EINVAL; /* privcmd-buf maps only whole shared buffers */
        return MAP_FAILED;
    }
    p = real_mmap(addr, length, prot, (flags & ~MAP_PRIVATE) | MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return p;
    pthread_mutex_lock(&lock);
    if (add_buffer(p, (length + PAGE - 1) & ~(PAGE - 1)) < 0) {
        pthread_mutex_unlock(&lock);
        real_munmap(p, length);
        errno = ENOMEM;
        return MAP_FAILED;
    }
    pthread_mutex_unlock(&lock);
    return p;
}

void *mmap64(void *addr, size_t length, int prot, int flags, int fd, off_t offset)
    __attribute__((alias("mmap")));

int munmap(void *addr, size_t length)
{
    resolve();
    int rc;

    pthread_mutex_lock(&lock); /* not while a hypercall sends this memory */
    rc = real_munmap(addr, length);
    if (rc == 0)
        cut_buffers((uintptr_t)addr, (uintptr_t)addr + ((length + PAGE - 1) & ~(PAGE - 1)));
    pthread_mutex_unlock(&lock);
    return rc;
}
