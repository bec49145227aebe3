/*
 * ferry lab guest: the whole userland of a lab guest, run as /init from a tiny initramfs.
 *
 * It allocates ferry.mem_mib MiB, touches every page once (so the memory is real and must be
 * migrated), then rewrites ferry.dirty_mibps MiB of it every second, paced in 10 ms slices, so a
 * migration sees a steady dirty rate. It prints a banner and a heartbeat line every 5 s on the
 * serial console; tests read them from the console log to know the workload is alive.
 *
 * Built statically by `ferry lab up` (cc -static), so the initramfs needs nothing else.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static unsigned long cmdline_value(const char *cmdline, const char *key, unsigned long fallback)
{
    const char *at = strstr(cmdline, key);
    if (at == NULL)
        return fallback;
    return strtoul(at + strlen(key), NULL, 10);
}

static void cmdline_string(const char *cmdline, const char *key, char *out, size_t out_len)
{
    const char *at = strstr(cmdline, key);
    out[0] = '\0';
    if (at == NULL)
        return;
    at += strlen(key);
    size_t i = 0;
    while (at[i] != '\0' && at[i] != ' ' && at[i] != '\n' && i + 1 < out_len) {
        out[i] = at[i];
        i++;
    }
    out[i] = '\0';
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(void)
{
    /* The initramfs has no /proc of its own: make it, then mount proc to read the command line. */
    mkdir("/proc", 0555);
    mount("proc", "/proc", "proc", 0, NULL);
    mkdir("/dev", 0755);
    mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
    int console = open("/dev/console", O_WRONLY);
    if (console >= 0) {
        dup2(console, 1);
        dup2(console, 2);
    }
    setvbuf(stdout, NULL, _IOLBF, 0);

    char cmdline[4096] = {0};
    int fd = open("/proc/cmdline", O_RDONLY);
    if (fd >= 0) {
        ssize_t n = read(fd, cmdline, sizeof(cmdline) - 1);
        if (n < 0)
            n = 0;
        cmdline[n] = '\0';
        close(fd);
    }

    unsigned long mem_mib = cmdline_value(cmdline, "ferry.mem_mib=", 16);
    unsigned long dirty_mibps = cmdline_value(cmdline, "ferry.dirty_mibps=", 0);
    char name[64];
    cmdline_string(cmdline, "ferry.name=", name, sizeof(name));

    printf("FERRY-GUEST %s up: mem_mib=%lu dirty_mibps=%lu\n", name, mem_mib, dirty_mibps);

    size_t mem_bytes = (size_t)mem_mib << 20;
    size_t page_bytes = 4096;
    uint8_t *arena = mem_bytes ? malloc(mem_bytes) : NULL;
    if (mem_bytes && arena == NULL) {
        printf("FERRY-GUEST %s cannot allocate %lu MiB\n", name, mem_mib);
        mem_bytes = 0;
    }
    /* Touch every page with non-zero data: zero pages migrate almost for free. */
    for (size_t off = 0; off < mem_bytes; off += page_bytes)
        arena[off] = (uint8_t)(off >> 12) | 1;
    printf("FERRY-GUEST %s workload running\n", name);

    const double slice_seconds = 0.01;
    /* Pages dirtied per slice; one byte per page is enough to dirty it. */
    size_t pages_per_slice = (size_t)((double)dirty_mibps * 256.0 * slice_seconds);
    if (dirty_mibps > 0 && pages_per_slice == 0)
        pages_per_slice = 1;
    size_t total_pages = mem_bytes / page_bytes;
    size_t cursor = 0;
    uint8_t stamp = 1;
    unsigned long heartbeat = 0;
    double next_heartbeat = now_seconds() + 5.0;
    double next_slice = now_seconds();

    for (;;) {
        if (total_pages > 0) {
            for (size_t i = 0; i < pages_per_slice; i++) {
                arena[cursor * page_bytes] = stamp;
                cursor++;
                if (cursor == total_pages) {
                    cursor = 0;
                    stamp++;
                }
            }
        }
        double now = now_seconds();
        if (now >= next_heartbeat) {
            heartbeat++;
            printf("FERRY-GUEST %s heartbeat %lu\n", name, heartbeat);
            next_heartbeat += 5.0;
        }
        next_slice += slice_seconds;
        double wait = next_slice - now_seconds();
        if (wait < -1.0) /* fell far behind (e.g. paused for migration): do not try to catch up */
            next_slice = now_seconds();
        else if (wait > 0) {
            struct timespec ts = {0, (long)(wait * 1e9)};
            nanosleep(&ts, NULL);
        }
    }
    return 0;
}
