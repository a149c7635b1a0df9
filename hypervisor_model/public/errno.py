"""Xen's errno values (``public/errno.h``), the numbers hypercalls return negated.

They equal x86 Linux's, but are spelt out here so the model never depends on the
host's ``errno`` module. EINTR and ERESTART are Xen-internal and never reach a guest.
"""

EPERM = 1
ENOENT = 2
ESRCH = 3
EINTR = 4  # internal to Xen only
EIO = 5
ENXIO = 6
E2BIG = 7
ENOEXEC = 8
EBADF = 9
ECHILD = 10
EAGAIN = 11
EWOULDBLOCK = 11  # alias of EAGAIN
ENOMEM = 12
EACCES = 13
EFAULT = 14
EBUSY = 16
EEXIST = 17
EXDEV = 18
ENODEV = 19
ENOTDIR = 20
EISDIR = 21
EINVAL = 22
ENFILE = 23
EMFILE = 24
ENOSPC = 28
EROFS = 30
EMLINK = 31
EDOM = 33
ERANGE = 34
EDEADLK = 35
EDEADLOCK = 35  # alias of EDEADLK
ENAMETOOLONG = 36
ENOLCK = 37
ENOSYS = 38
ENOTEMPTY = 39
ENODATA = 61
ETIME = 62
EBADMSG = 74
EOVERFLOW = 75
EILSEQ = 84
ERESTART = 85  # internal to Xen only: the hypercall is to be continued
ENOTSOCK = 88
EMSGSIZE = 90
EOPNOTSUPP = 95
EADDRINUSE = 98
EADDRNOTAVAIL = 99
ENOBUFS = 105
EISCONN = 106
ENOTCONN = 107
ETIMEDOUT = 110
ECONNREFUSED = 111

# Value -> name for messages; an aliased value keeps its primary name (EAGAIN, EDEADLK).
errorcode: dict[int, str] = {}
for _name, _value in list(globals().items()):
    if _name.startswith("E") and isinstance(_value, int):
        errorcode.setdefault(_value, _name)
del _name, _value
