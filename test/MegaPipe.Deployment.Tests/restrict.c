// restrict: runs a command the way a container runtime would start it, with a seccomp filter
// and resource limits installed before exec, so they hold for every thread of the new process.
//
//   restrict [--deny-io-uring] [--nofile N] -- command [args...]
//
// --deny-io-uring  io_uring_setup, io_uring_enter and io_uring_register fail with EPERM, as
//                  under Docker's default seccomp profile (SECCOMP_FILTER_FLAG_TSYNC, no_new_privs).
// --nofile N       RLIMIT_NOFILE soft and hard limit N.
#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define RESTRICT_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define RESTRICT_AUDIT_ARCH AUDIT_ARCH_AARCH64
#else
#error "unsupported architecture"
#endif

static int deny_io_uring(void)
{
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, RESTRICT_AUDIT_ARCH, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 425 /* io_uring_setup */, 3, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 426 /* io_uring_enter */, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 427 /* io_uring_register */, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
    };
    struct sock_fprog program = { .len = sizeof(filter) / sizeof(filter[0]), .filter = filter };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        perror("restrict: PR_SET_NO_NEW_PRIVS");
        return -1;
    }
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &program) != 0) {
        perror("restrict: seccomp");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    int deny = 0;
    long nofile = -1;
    int i = 1;
    for (; i < argc; i++) {
        if (strcmp(argv[i], "--deny-io-uring") == 0) {
            deny = 1;
        } else if (strcmp(argv[i], "--nofile") == 0 && i + 1 < argc) {
            nofile = atol(argv[++i]);
        } else if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        } else {
            fprintf(stderr, "restrict: unknown option %s\n", argv[i]);
            return 125;
        }
    }
    if (i >= argc) {
        fprintf(stderr, "usage: restrict [--deny-io-uring] [--nofile N] -- command [args...]\n");
        return 125;
    }
    if (nofile > 0) {
        struct rlimit limit = { .rlim_cur = (rlim_t)nofile, .rlim_max = (rlim_t)nofile };
        if (setrlimit(RLIMIT_NOFILE, &limit) != 0) {
            perror("restrict: setrlimit(RLIMIT_NOFILE)");
            return 126;
        }
    }
    if (deny && deny_io_uring() != 0) {
        return 126;
    }
    execvp(argv[i], &argv[i]);
    perror("restrict: exec");
    return 127;
}
