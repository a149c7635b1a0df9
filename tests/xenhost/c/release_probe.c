/*
 * The calls whose ABI differs between Xen releases, made by the real libxenctrl: physinfo
 * (a sysctl), createdomain (a domctl whose layout is the release's), the domain list.
 *
 * usage: release_probe
 * Prints "physinfo RC NR_NODES TOTAL_PAGES", "create RC DOMID", "list RC N" and one
 * "DOMID FLAGS" line per domain; an RC is 0 or the errno's name.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <xenctrl.h>

static const char *rc_name(int rc)
{
    return rc < 0 ? strerrorname_np(errno) : "0";
}

int main(void)
{
    xc_interface *xch = xc_interface_open(NULL, NULL, 0);
    xc_physinfo_t physinfo = {0};
    struct xen_domctl_createdomain config = {
        .flags = XEN_DOMCTL_CDF_hvm | XEN_DOMCTL_CDF_hap,
        .max_vcpus = 1,
        .max_evtchn_port = 1023,
        .max_grant_frames = -1,
        .max_maptrack_frames = -1,
        .grant_opts = XEN_DOMCTL_GRANT_version(2),
        .arch = {.emulation_flags = XEN_X86_EMU_ALL & ~XEN_X86_EMU_VPCI},
    };
    uint32_t domid = 0; /* 4.17: 0 asks Xen to pick a free domid */
    xc_domaininfo_t info[8];
    int rc, i;

    if (!xch)
        return 1;
    rc = xc_physinfo(xch, &physinfo);
    printf("physinfo %s %u %lu\n", rc_name(rc), physinfo.nr_nodes,
           (unsigned long)physinfo.total_pages);
    rc = xc_domain_create(xch, &domid, &config);
    printf("create %s %u\n", rc_name(rc), rc < 0 ? 0 : domid);
    rc = xc_domain_getinfolist(xch, 0, 8, info);
    printf("list %s %d\n", rc_name(rc), rc < 0 ? 0 : rc);
    for (i = 0; i < rc; i++)
        printf("%u %#x\n", info[i].domain, info[i].flags);
    xc_interface_close(xch);
    return 0;
}
