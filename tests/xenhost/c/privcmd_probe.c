/*
 * What a program linked against the real libxencall sees of the privcmd bridge: the
 * devices, raw hypercalls through xencall, fork, and the libraries that must fall back.
 * Prints one "name value" line per observation; the test compares them with its own.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/close_range.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xenctrl.h>
#include <xencall.h>
#include <xenforeignmemory.h>
#include <xen/sys/privcmd.h>

static void result(const char *name, int rc)
{
    if (rc < 0)
        printf("%s -1 %s\n", name, strerrorname_np(errno));
    else
        printf("%s %d\n", name, rc);
}

int main(void)
{
    int privcmd = open("/dev/xen/privcmd", O_RDWR | O_CLOEXEC);
    int hcall = open("/dev/xen/hypercall", O_RDWR | O_CLOEXEC);
    xencall_handle *xcall;
    xenforeignmemory_handle *fmem;
    xc_interface *xch;
    char *buf;
    void *p;
    xen_pfn_t frame = 0;
    int err = 0, status;
    pid_t child;

    printf("open %d %d\n", privcmd >= 0, hcall >= 0);
    result("unimplemented", ioctl(privcmd, IOCTL_PRIVCMD_UNIMPLEMENTED, NULL));
    result("mmapbatch_v2", ioctl(privcmd, IOCTL_PRIVCMD_MMAPBATCH_V2, NULL));
    result("hypercall_dev_ioctl", ioctl(hcall, IOCTL_PRIVCMD_HYPERCALL, NULL));
    p = mmap(NULL, 4096, PROT_READ, MAP_SHARED, privcmd, 0);
    printf("mmap_privcmd %s\n", p == MAP_FAILED ? strerrorname_np(errno) : "mapped");
    p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, hcall, 0);
    printf("mmap_private %s\n", p == MAP_FAILED ? strerrorname_np(errno) : "mapped");
    close(privcmd);
    close(hcall);

    xcall = xencall_open(NULL, 0);
    if (!xcall)
        return 2;
    result("version", xencall2(xcall, __HYPERVISOR_xen_version, XENVER_version, 0));
    buf = xencall_alloc_buffer(xcall, sizeof(xen_extraversion_t));
    result("extraversion", xencall2(xcall, __HYPERVISOR_xen_version, XENVER_extraversion,
                                    (unsigned long)buf));
    printf("extraversion_text %s\n", buf);
    result("outside_buffers", xencall2(xcall, __HYPERVISOR_xen_version, XENVER_extraversion,
                                       0x1000));

    /* The child inherits the buffer, shared as the driver's mappings are, and calls over a
     * connection of its own; the parent sees what Xen wrote there. */
    memset(buf, 'x', sizeof(xen_extraversion_t));
    fflush(stdout);
    child = fork();
    if (child == 0)
        _exit(xencall2(xcall, __HYPERVISOR_xen_version, XENVER_extraversion,
                       (unsigned long)buf) == 0 ? 0 : 1);
    waitpid(child, &status, 0);
    printf("child %d %s\n", WEXITSTATUS(status), buf);
    xencall_free_buffer(xcall, buf);
    xencall_close(xcall);

    xch = xc_interface_open(NULL, NULL, 0);
    printf("xc_interface_open %s\n", xch ? "ok" : strerrorname_np(errno));
    xc_interface_close(xch);

    fmem = xenforeignmemory_open(NULL, 0);
    p = fmem ? xenforeignmemory_map(fmem, 0, PROT_READ, 1, &frame, &err) : NULL;
    printf("foreign_map %s\n", p ? "mapped" : strerrorname_np(errno));
    xenforeignmemory_close(fmem);

    /* A daemon closes every descriptor behind libc's back, then opens files that take
     * the old numbers: the bridge must connect anew, not write into those files. */
    fflush(stdout);
    close_range(3, ~0U, 0);
    for (int i = 0; i < 8; i++)
        open("/dev/null", O_RDONLY);
    xcall = xencall_open(NULL, 0);
    result("after_close_range", xcall ? xencall2(xcall, __HYPERVISOR_xen_version,
                                                 XENVER_version, 0) : -1);
    return 0;
}
