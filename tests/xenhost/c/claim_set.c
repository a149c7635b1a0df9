/*
 * Set and read back a NUMA claim set with XEN_DOMCTL_claim_memory (v7 of the claim-set
 * series) through libxencall's xencall1: no released libxenctrl wraps it, so the domctl is
 * laid out here by hand.
 *
 * usage: claim_set INTERFACE_VERSION DOMID TARGET=PAGES...
 * Prints "set RC", "get_small RC NEEDED" (a GET with room for none), then "get RC N" and
 * one "TARGET PAGES" line per entry of the claim set as Xen holds it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xencall.h>

#define HYPERVISOR_domctl 36
#define DOMCTL_claim_memory 91
#define CLAIM_SET 0
#define CLAIM_GET 1
#define MAX_ENTRIES 8

struct claim {
    uint64_t pages;
    uint32_t target;
    uint32_t cmd;
};

struct domctl {
    uint32_t cmd;
    uint32_t interface_version;
    uint16_t domain;
    uint16_t pad[3];
    union {
        struct {
            uint64_t claim_set; /* guest handle: struct claim[nr_entries] */
            uint32_t nr_entries;
            uint32_t mode;
        } claim_memory;
        uint8_t raw[128];
    } u;
};

static int claim_memory(xencall_handle *xcall, struct domctl *op, struct claim *set,
                        uint32_t mode, uint32_t nr)
{
    op->cmd = DOMCTL_claim_memory;
    op->u.claim_memory.claim_set = (uintptr_t)set;
    op->u.claim_memory.nr_entries = nr;
    op->u.claim_memory.mode = mode;
    return xencall1(xcall, HYPERVISOR_domctl, (uintptr_t)op);
}

static void result(const char *name, int rc)
{
    printf("%s %s", name, rc < 0 ? strerrorname_np(errno) : "0");
}

int main(int argc, char **argv)
{
    xencall_handle *xcall = xencall_open(NULL, 0);
    struct domctl *op;
    struct claim *set;
    int nr = argc - 3, rc;

    if (!xcall || argc < 4 || nr > MAX_ENTRIES)
        return 2;
    op = xencall_alloc_buffer(xcall, sizeof(*op));
    set = xencall_alloc_buffer(xcall, MAX_ENTRIES * sizeof(*set));
    memset(op, 0, sizeof(*op));
    op->interface_version = strtoul(argv[1], NULL, 0);
    op->domain = strtoul(argv[2], NULL, 0);
    for (int i = 0; i < nr; i++) {
        char *eq = strchr(argv[3 + i], '=');
        if (!eq)
            return 2;
        set[i] = (struct claim){strtoull(eq + 1, NULL, 0), strtoul(argv[3 + i], NULL, 0), 0};
    }

    result("set", claim_memory(xcall, op, set, CLAIM_SET, nr));
    printf("\n");
    memset(set, 0, MAX_ENTRIES * sizeof(*set));
    result("get_small", claim_memory(xcall, op, set, CLAIM_GET, 0));
    printf(" %u\n", op->u.claim_memory.nr_entries);
    rc = claim_memory(xcall, op, set, CLAIM_GET, MAX_ENTRIES);
    result("get", rc);
    printf(" %u\n", op->u.claim_memory.nr_entries);
    for (uint32_t i = 0; rc == 0 && i < op->u.claim_memory.nr_entries; i++)
        printf("0x%x %llu\n", set[i].target, (unsigned long long)set[i].pages);
    xencall_close(xcall);
    return 0;
}
