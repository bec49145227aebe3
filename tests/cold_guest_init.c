/*
 * ferry cold-migration test guest: the whole userland, run as /init from a tiny initramfs.
 *
 * Unlike the lab's workload guests, it answers an ACPI power-button press by powering off, so
 * a cold migration's graceful shutdown is exercised for real. The Debian cloud kernel builds
 * the ACPI button driver as a module, so the initramfs carries button.ko and this program
 * loads it; the driver's handler makes the kernel count power-button events in
 * /sys/firmware/acpi/interrupts/ff_pwr_btn, which is polled here (no evdev needed).
 *
 * ferry.acpi=ignore on the kernel command line makes it ignore the button, like a guest with
 * no ACPI support: the shutdown request then times out.
 *
 * Console lines (tests read them from the serial log):
 *   FERRY-GUEST <name> up: acpi=<poweroff|ignore> button=<loaded|missing>
 *   FERRY-GUEST <name> heartbeat <n>             every 5 s
 *   FERRY-GUEST <name> powering off (ACPI power button)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

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

/* The first number in the counter file: how many power-button events the kernel has seen. */
static unsigned long power_button_presses(void)
{
    char text[128] = {0};
    int fd = open("/sys/firmware/acpi/interrupts/ff_pwr_btn", O_RDONLY);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, text, sizeof(text) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    return strtoul(text, NULL, 10);
}

int main(void)
{
    mkdir("/proc", 0555);
    mount("proc", "/proc", "proc", 0, NULL);
    mkdir("/dev", 0755);
    mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
    mkdir("/sys", 0555);
    mount("sysfs", "/sys", "sysfs", 0, NULL);
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
        cmdline[n > 0 ? n : 0] = '\0';
        close(fd);
    }
    char name[64];
    char acpi[16];
    cmdline_string(cmdline, "ferry.name=", name, sizeof(name));
    cmdline_string(cmdline, "ferry.acpi=", acpi, sizeof(acpi));
    int obey_button = strcmp(acpi, "ignore") != 0;

    int module = open("/button.ko", O_RDONLY);
    int loaded = module >= 0 && syscall(SYS_finit_module, module, "", 0) == 0;
    if (module >= 0)
        close(module);

    printf("FERRY-GUEST %s up: acpi=%s button=%s\n", name, obey_button ? "poweroff" : "ignore",
           loaded ? "loaded" : "missing");

    unsigned long presses_at_boot = power_button_presses();
    unsigned long heartbeat = 0;
    for (int tick = 1;; tick++) {
        struct timespec pause = {0, 200 * 1000 * 1000};
        nanosleep(&pause, NULL);
        if (obey_button && power_button_presses() > presses_at_boot) {
            printf("FERRY-GUEST %s powering off (ACPI power button)\n", name);
            sync();
            reboot(RB_POWER_OFF);
        }
        if (tick % 25 == 0)
            printf("FERRY-GUEST %s heartbeat %lu\n", name, ++heartbeat);
    }
    return 0;
}
