/*
 * A domain builder's calls through the real libxenctrl: the host (physinfo, numainfo,
 * availheap), a domain made and sized (create, max_vcpus, setmaxmem), legacy claims (set,
 * refused, cancelled), memory populated on one node under a claim, the domain list, and
 * the domain destroyed. Prints one "name values..." line per observation; the test
 * compares them with numbers worked out by hand.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <xenctrl.h>

#define MAX_DOMAINS 16

static xc_interface *xch;

static void result(const char *name, int rc)
{
    printf("%s %s\n", name, rc < 0 ? strerrorname_np(errno) : "0");
}

static void physinfo(const char *name)
{
    xc_physinfo_t pi = {0};
    if (xc_physinfo(xch, &pi) < 0) {
        result(name, -1);
        return;
    }
    printf("%s %u %u %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", name, pi.nr_nodes, pi.nr_cpus,
           pi.total_pages, pi.free_pages, pi.outstanding_pages);
}

static void availheap(const char *name, int node)
{
    uint64_t bytes = 0;
    if (xc_availheap(xch, 0, 0, node, &bytes) < 0)
        result(name, -1);
    else
        printf("%s %" PRIu64 "\n", name, bytes);
}

static void domains(const char *name)
{
    xc_domaininfo_t info[MAX_DOMAINS];
    int n = xc_domain_getinfolist(xch, 0, MAX_DOMAINS, info);
    if (n < 0) {
        result(name, -1);
        return;
    }
    printf("%s %d\n", name, n);
    for (int i = 0; i < n; i++)
        printf("  d%u tot %" PRIu64 " max %" PRIu64 " outstanding %" PRIu64 " vcpus %u\n",
               info[i].domain, info[i].tot_pages, info[i].max_pages,
               info[i].outstanding_pages, info[i].max_vcpu_id + 1);
}

int main(void)
{
    struct xen_domctl_createdomain config = {
        .flags = XEN_DOMCTL_CDF_hvm | XEN_DOMCTL_CDF_hap,
        .max_vcpus = 2,
        .max_evtchn_port = 1023,
        .max_grant_frames = 64,
        .max_maptrack_frames = 1024,
        .grant_opts = XEN_DOMCTL_GRANT_version(1),
        .arch.emulation_flags = XEN_X86_EMU_ALL & ~XEN_X86_EMU_VPCI, /* as libxl: HVM */
    };
    xc_meminfo_t meminfo[4];
    uint32_t distance[16];
    unsigned int nodes = 4;
    xen_pfn_t gfns[512];
    uint32_t domid = 0; /* 4.17: 0 asks Xen for any free domid */

    xch = xc_interface_open(NULL, NULL, 0);
    if (!xch)
        return 2;

    physinfo("physinfo");
    if (xc_numainfo(xch, &nodes, meminfo, distance) < 0)
        result("numainfo", -1);
    else
        for (unsigned int i = 0; i < nodes; i++)
            printf("numainfo node%u %" PRIu64 " %" PRIu64 " %u %u\n", i, meminfo[i].memsize,
                   meminfo[i].memfree, distance[i * nodes], distance[i * nodes + 1]);
    availheap("availheap_host", -1);

    result("create", xc_domain_create(xch, &domid, &config));
    printf("domid %u\n", domid);
    result("max_vcpus", xc_domain_max_vcpus(xch, domid, 2));
    result("setmaxmem", xc_domain_setmaxmem(xch, domid, 1 << 20)); /* 1 GiB in KiB */

    result("claim_above_max", xc_domain_claim_pages(xch, domid, 262145));
    result("claim", xc_domain_claim_pages(xch, domid, 1024));
    result("claim_again", xc_domain_claim_pages(xch, domid, 2048));
    physinfo("physinfo_claimed");
    result("claim_cancel", xc_domain_claim_pages(xch, domid, 0));
    result("setmaxmem_16g", xc_domain_setmaxmem(xch, domid, 16 << 20));
    result("claim_too_much", xc_domain_claim_pages(xch, domid, 3000000));
    physinfo("physinfo_refused");

    result("claim_for_build", xc_domain_claim_pages(xch, domid, 1024));
    for (int i = 0; i < 512; i++)
        gfns[i] = i;
    result("populate", xc_domain_populate_physmap_exact(xch, domid, 512, 0,
                                                        XENMEMF_exact_node(1), gfns));
    availheap("availheap_node0", 0);
    availheap("availheap_node1", 1);
    physinfo("physinfo_built");
    domains("getinfolist");

    result("destroy", xc_domain_destroy(xch, domid));
    domains("getinfolist_after");
    physinfo("physinfo_after");
    xc_interface_close(xch);
    return 0;
}
