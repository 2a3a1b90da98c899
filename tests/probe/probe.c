/*
 * probe: makes raw system calls from inside a sandbox and prints what happened, one line per
 * action: "ACTION ok" or "ACTION ERRNO-NAME" (or "ACTION killed SIGNAME" for an action run in a
 * child process). tests/security.rs compiles it with the host's gcc, statically, so it runs in
 * any root the sandbox has.
 *
 * Usage: probe ACTION[=ARG]...   (`view`: the sandbox as the command sees it)
 *
 * A result line names the action as it was asked, argument included ("read=/etc/x EACCES").
 *
 * Where the kernel itself would refuse with another errno than the filter, the arguments are
 * chosen so that it would let the call through: EPERM then means the seccomp filter refused.
 *
 * It only runs in a user namespace other than the host's: these calls succeed for the host's
 * root (an i386 mount over /tmp included), so it must never run there by accident.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/io_uring.h>
#include <linux/keyctl.h>
#include <linux/perf_event.h>
#include <linux/userfaultfd.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif

static void report(const char *action, long ret) {
    if (ret < 0)
        printf("%s %s\n", action, strerrorname_np(errno));
    else
        printf("%s ok\n", action);
    fflush(stdout);
}

/* A child that waits to be looked at; killed by the caller. */
static pid_t sleeper(void) {
    pid_t pid = fork();
    if (pid == 0) {
        for (;;) pause();
    }
    return pid;
}

static void finish(pid_t pid) {
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* Run fn in a child and report how the child ended: a filter may kill it. */
static void in_child(const char *action, long (*fn)(void)) {
    pid_t pid = fork();
    if (pid == 0) {
        long ret = fn();
        _exit(ret < 0 ? 100 + (errno & 0x7f) : 0);
    }
    int status;
    waitpid(pid, &status, 0);
    if (WIFSIGNALED(status))
        printf("%s killed %s\n", action, sigabbrev_np(WTERMSIG(status)));
    else if (WEXITSTATUS(status) == 0)
        printf("%s ok\n", action);
    else
        printf("%s %s\n", action, strerrorname_np(WEXITSTATUS(status) - 100));
    fflush(stdout);
}

/* mount(2) through the i386 ABI: its number, 21, is access(2) on x86_64, which every profile
 * allows; only the filter's architecture check stands between this and a mount. */
static long i386_mount(void) {
#if defined(__x86_64__)
    static char source[] = "none", target[] = "/tmp", fstype[] = "tmpfs";
    long ret;
    __asm__ volatile("int $0x80"
                     : "=a"(ret)
                     : "0"(21L), "b"(source), "c"(target), "d"(fstype), "S"(0L), "D"(0L)
                     : "memory");
    if (ret < 0) {
        errno = -ret;
        return -1;
    }
    return ret;
#else
    errno = ENOSYS;
    return -1;
#endif
}

/* getpid(2) through the x32 ABI (number | 0x40000000). */
static long x32_getpid(void) {
    return syscall(0x40000000L | SYS_getpid);
}

static long tcp(const char *how, int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    long ret;
    if (strcmp(how, "bind") == 0) {
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        ret = bind(fd, (struct sockaddr *)&addr, sizeof addr);
    } else {
        ret = connect(fd, (struct sockaddr *)&addr, sizeof addr);
    }
    int saved = errno;
    close(fd);
    errno = saved;
    return ret;
}

static long serve_and_connect(int port) {
    int server = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(server, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(server, 1) < 0)
        return -1;
    long ret = tcp("connect", port);
    close(server);
    return ret;
}

static long read_file(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    char buffer[64];
    long ret = read(fd, buffer, sizeof buffer);
    close(fd);
    return ret;
}

/* The initial user namespace maps the whole id range onto itself. */
static int in_initial_user_namespace(void) {
    char map[128] = {0};
    int fd = open("/proc/self/uid_map", O_RDONLY);
    if (fd < 0) return 1;
    read(fd, map, sizeof map - 1);
    close(fd);
    return strstr(map, "4294967295") != NULL;
}

/* Print each line of a file, runs of blanks squeezed to one space: "LABEL LINE". */
static void print_lines(const char *label, const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return;
    char line[4096];
    while (fgets(line, sizeof line, f)) {
        char out[4096];
        size_t n = 0;
        int blank = 1;
        for (char *c = line; *c && *c != '\n' && n < sizeof out - 1; c++) {
            if (*c == ' ' || *c == '\t') {
                if (!blank) out[n++] = ' ';
                blank = 1;
            } else {
                out[n++] = *c;
                blank = 0;
            }
        }
        while (n > 0 && out[n - 1] == ' ') n--;
        out[n] = '\0';
        printf("%s %s\n", label, out);
    }
    fclose(f);
}

/* A process's capabilities, no_new_privs, seccomp mode and umask from its status file:
 * "status FIELD VALUE" lines. */
static void print_status(const char *path) {
    FILE *status = fopen(path, "r");
    char line[4096];
    while (status && fgets(line, sizeof line, status)) {
        static const char *fields[] = {"Cap", "NoNewPrivs:", "Seccomp:", "Umask:"};
        for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
            if (!strncmp(line, fields[i], strlen(fields[i]))) {
                char *colon = strchr(line, ':');
                *colon = '\0';
                char *value = colon + 1;
                value += strspn(value, " \t");
                value[strcspn(value, "\n")] = '\0';
                printf("status %s %s\n", line, value);
            }
        }
    }
    if (status) fclose(status);
}

/* The sandbox as its command sees it, one "FIELD VALUE" line per fact, for tests/export.rs to
 * compare between runtimes. */
static void view(void) {
    print_lines("uid_map", "/proc/self/uid_map");
    print_lines("gid_map", "/proc/self/gid_map");
    struct utsname names;
    uname(&names);
    printf("hostname %s\ndomainname %s\n", names.nodename, names.domainname);
    printf("uid %d\ngid %d\n", getuid(), getgid());
    gid_t groups[64];
    int count = getgroups(64, groups);
    printf("groups");
    for (int i = 0; i < count; i++) printf(" %d", groups[i]);
    printf("\n");
    char cwd[4096];
    printf("cwd %s\n", getcwd(cwd, sizeof cwd) ? cwd : "?");
    extern char **environ;
    for (char **e = environ; *e; e++) printf("env %s\n", *e);

    print_status("/proc/self/status");
    char line[4096];

    static const struct { int resource; const char *name; } limits[] = {
        {RLIMIT_AS, "as"}, {RLIMIT_CORE, "core"}, {RLIMIT_CPU, "cpu"}, {RLIMIT_DATA, "data"},
        {RLIMIT_FSIZE, "fsize"}, {RLIMIT_LOCKS, "locks"}, {RLIMIT_MEMLOCK, "memlock"},
        {RLIMIT_MSGQUEUE, "msgqueue"}, {RLIMIT_NICE, "nice"}, {RLIMIT_NOFILE, "nofile"},
        {RLIMIT_NPROC, "nproc"}, {RLIMIT_RSS, "rss"}, {RLIMIT_RTPRIO, "rtprio"},
        {RLIMIT_RTTIME, "rttime"}, {RLIMIT_SIGPENDING, "sigpending"}, {RLIMIT_STACK, "stack"},
    };
    for (size_t i = 0; i < sizeof limits / sizeof *limits; i++) {
        struct rlimit limit;
        getrlimit(limits[i].resource, &limit);
        printf("rlimit %s %lld %lld\n", limits[i].name, (long long)limit.rlim_cur,
               (long long)limit.rlim_max);
    }

    /* mountinfo: ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [TAGS...] - FSTYPE SOURCE SUPER */
    FILE *mounts = fopen("/proc/self/mountinfo", "r");
    while (mounts && fgets(line, sizeof line, mounts)) {
        char point[4096], options[4096];
        if (sscanf(line, "%*s %*s %*s %*s %4095s %4095s", point, options) != 2) continue;
        char *dash = strstr(line, " - ");
        char fstype[256] = "?";
        if (dash) sscanf(dash + 3, "%255s", fstype);
        printf("mount %s %s %.2s\n", point, fstype, options);
    }
    if (mounts) fclose(mounts);

    /* The limits the sandbox's own cgroup shows, where a cgroup file system is mounted. */
    static const char *cgroup_files[] = {
        "memory/memory.limit_in_bytes", "memory/memory.memsw.limit_in_bytes",
        "cpu/cpu.cfs_quota_us", "cpu/cpu.cfs_period_us", "cpu/cpu.shares", "pids/pids.max",
        "blkio/blkio.bfq.weight", "blkio/blkio.weight", "memory.max", "memory.swap.max",
        "cpu.max", "cpu.weight", "pids.max", "io.weight", "io.bfq.weight",
    };
    for (size_t i = 0; i < sizeof cgroup_files / sizeof *cgroup_files; i++) {
        char path[512], label[512];
        snprintf(path, sizeof path, "/sys/fs/cgroup/%s", cgroup_files[i]);
        snprintf(label, sizeof label, "cgroup %s", cgroup_files[i]);
        print_lines(label, path);
    }
    fflush(stdout);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: probe ACTION[=ARG]...\n");
        return 2;
    }
    if (in_initial_user_namespace()) {
        fprintf(stderr, "probe: refusing to run in the host's user namespace\n");
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        /* Results are named as asked, argument included: ACTION=ARG RESULT. */
        const char *label = strdup(argv[i]);
        char *action = argv[i];
        char *arg = strchr(action, '=');
        if (arg) *arg++ = '\0';
        long ret;
        if (!strcmp(action, "mount")) {
            ret = mount("none", "/tmp", "tmpfs", 0, NULL);
        } else if (!strcmp(action, "remount")) {
            ret = mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND, NULL);
        } else if (!strcmp(action, "umount")) {
            ret = umount2("/proc", MNT_DETACH);
        } else if (!strcmp(action, "fsopen")) {
            ret = syscall(SYS_fsopen, "tmpfs", 0);
        } else if (!strcmp(action, "open_tree")) {
            ret = syscall(SYS_open_tree, AT_FDCWD, "/tmp", 1 /* OPEN_TREE_CLONE */);
        } else if (!strcmp(action, "write")) {
            ret = open(arg, O_WRONLY);
        } else if (!strcmp(action, "read")) {
            ret = read_file(arg);
        } else if (!strcmp(action, "mknod")) {
            ret = mknod(arg, S_IFCHR | 0600, makedev(1, 1));
        } else if (!strcmp(action, "ptrace")) {
            /* A child of its own, or the process ARG (left as it was). */
            pid_t pid = arg ? atoi(arg) : sleeper();
            ret = ptrace(PTRACE_SEIZE, pid, 0, 0);
            if (arg && ret == 0) ptrace(PTRACE_DETACH, pid, 0, 0);
            if (!arg) finish(pid);
        } else if (!strcmp(action, "process_vm_readv")) {
            pid_t pid = arg ? atoi(arg) : sleeper();
            char here[8];
            struct iovec local = {here, sizeof here}, remote = {here, sizeof here};
            ret = process_vm_readv(pid, &local, 1, &remote, 1, 0);
            if (!arg) finish(pid);
        } else if (!strcmp(action, "process_vm_writev")) {
            pid_t pid = atoi(arg);
            char here[8];
            struct iovec local = {here, sizeof here}, remote = {here, sizeof here};
            /* An address nothing is mapped at: a write that got past the access check fails
             * with EFAULT and changes nothing. */
            remote.iov_base = (void *)8;
            ret = process_vm_writev(pid, &local, 1, &remote, 1, 0);
        } else if (!strcmp(action, "pidfd_getfd")) {
            /* Descriptor 0 of the process ARG. */
            int pidfd = syscall(SYS_pidfd_open, atoi(arg), 0);
            ret = pidfd < 0 ? -1 : syscall(SYS_pidfd_getfd, pidfd, 0, 0);
        } else if (!strcmp(action, "open")) {
            ret = open(arg, O_RDONLY);
        } else if (!strcmp(action, "open-rw")) {
            ret = open(arg, O_RDWR);
        } else if (!strcmp(action, "readlink")) {
            char target[4096];
            ret = readlink(arg, target, sizeof target);
        } else if (!strcmp(action, "echo-signal")) {
            /* SIGUSR1 to the process ARG, then wait for it to come back: the sandbox's init
             * forwards it to its command, which this probe then is. */
            sigset_t usr1;
            sigemptyset(&usr1);
            sigaddset(&usr1, SIGUSR1);
            sigprocmask(SIG_BLOCK, &usr1, NULL);
            ret = kill(atoi(arg), SIGUSR1);
            if (ret == 0) ret = sigwaitinfo(&usr1, NULL);
        } else if (!strcmp(action, "status")) {
            /* The confinement of the process ARG: "status FIELD VALUE" lines. */
            char path[64];
            snprintf(path, sizeof path, "/proc/%s/status", arg);
            print_status(path);
            continue;
        } else if (!strcmp(action, "name_to_handle_at")) {
            struct {
                struct file_handle handle;
                unsigned char bytes[MAX_HANDLE_SZ];
            } h = {.handle.handle_bytes = MAX_HANDLE_SZ};
            int mount_id;
            ret = name_to_handle_at(AT_FDCWD, "/", &h.handle, &mount_id, 0);
        } else if (!strcmp(action, "open_by_handle_at")) {
            struct {
                struct file_handle handle;
                unsigned char bytes[8];
            } h = {.handle.handle_bytes = 8};
            ret = open_by_handle_at(AT_FDCWD, &h.handle, O_RDONLY);
        } else if (!strcmp(action, "keyctl")) {
            ret = syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0);
        } else if (!strcmp(action, "add_key")) {
            ret = syscall(SYS_add_key, "user", "probe", "x", 1, KEY_SPEC_PROCESS_KEYRING);
        } else if (!strcmp(action, "unshare-user")) {
            ret = unshare(CLONE_NEWUSER);
        } else if (!strcmp(action, "clone-user")) {
            ret = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
            if (ret == 0) _exit(0);
            if (ret > 0) waitpid(ret, NULL, 0);
        } else if (!strcmp(action, "clone3")) {
            struct clone_args {
                uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
            } args = {.exit_signal = SIGCHLD};
            ret = syscall(SYS_clone3, &args, sizeof args);
            if (ret == 0) _exit(0);
            if (ret > 0) waitpid(ret, NULL, 0);
        } else if (!strcmp(action, "fork")) {
            /* glibc's fork: clone3 first, clone when clone3 says ENOSYS */
            ret = fork();
            if (ret == 0) _exit(0);
            if (ret > 0) waitpid(ret, NULL, 0);
        } else if (!strcmp(action, "bpf")) {
            union bpf_attr attr = {.map_type = BPF_MAP_TYPE_ARRAY, .key_size = 4,
                                   .value_size = 4, .max_entries = 1};
            ret = syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof attr);
        } else if (!strcmp(action, "perf_event_open")) {
            struct perf_event_attr attr = {.type = PERF_TYPE_SOFTWARE, .size = sizeof attr,
                                           .config = PERF_COUNT_SW_TASK_CLOCK,
                                           .exclude_kernel = 1, .exclude_hv = 1};
            ret = syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0);
        } else if (!strcmp(action, "userfaultfd")) {
            ret = syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
        } else if (!strcmp(action, "io_uring_setup")) {
            struct io_uring_params params;
            memset(&params, 0, sizeof params);
            ret = syscall(SYS_io_uring_setup, 1, &params);
        } else if (!strcmp(action, "tiocsti")) {
            char c = '\n';
            ret = ioctl(0, TIOCSTI, &c);
        } else if (!strcmp(action, "personality")) {
            ret = personality(ADDR_NO_RANDOMIZE);
        } else if (!strcmp(action, "personality-query")) {
            ret = personality(0xffffffff);
        } else if (!strcmp(action, "raw-socket")) {
            ret = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
        } else if (!strcmp(action, "packet-socket")) {
            ret = socket(AF_PACKET, SOCK_RAW, htons(0x0003 /* ETH_P_ALL */));
        } else if (!strcmp(action, "i386-mount")) {
            in_child(label, i386_mount);
            continue;
        } else if (!strcmp(action, "x32-getpid")) {
            in_child(label, x32_getpid);
            continue;
        } else if (!strcmp(action, "getpid")) {
            ret = syscall(SYS_getpid);
        } else if (!strcmp(action, "ids")) {
            char status[4096] = {0};
            int fd = open("/proc/self/status", O_RDONLY);
            read(fd, status, sizeof status - 1);
            close(fd);
            char *capeff = strstr(status, "CapEff:\t");
            char *nnp = strstr(status, "NoNewPrivs:\t");
            char *mode = strstr(status, "Seccomp:\t");
            printf("ids uid=%d euid=%d capeff=%.16s nnp=%.1s seccomp=%.1s\n", getuid(),
                   geteuid(), capeff ? capeff + 8 : "?", nnp ? nnp + 12 : "?",
                   mode ? mode + 9 : "?");
            continue;
        } else if (!strcmp(action, "bind")) {
            ret = tcp("bind", atoi(arg));
        } else if (!strcmp(action, "connect")) {
            ret = tcp("connect", atoi(arg));
        } else if (!strcmp(action, "serve")) {
            ret = serve_and_connect(atoi(arg));
        } else if (!strcmp(action, "rlimits")) {
            int resources[] = {RLIMIT_NOFILE, RLIMIT_NPROC, RLIMIT_CORE, RLIMIT_FSIZE};
            const char *names[] = {"nofile", "nproc", "core", "fsize"};
            for (int r = 0; r < 4; r++) {
                struct rlimit limit;
                getrlimit(resources[r], &limit);
                printf("rlimit %s %lld %lld\n", names[r], (long long)limit.rlim_cur,
                       (long long)limit.rlim_max);
            }
            continue;
        } else if (!strcmp(action, "create")) {
            ret = open(arg, O_WRONLY | O_CREAT, 0600);
        } else if (!strcmp(action, "view")) {
            view();
            continue;
        } else if (!strcmp(action, "pause")) {
            /* Until a signal ends it. */
            for (;;) pause();
        } else if (!strcmp(action, "say")) {
            printf("%s\n", arg);
            fflush(stdout);
            continue;
        } else {
            fprintf(stderr, "probe: unknown action %s\n", action);
            return 2;
        }
        report(label, ret);
    }
    return 0;
}
