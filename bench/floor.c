/*
 * floor.c: the kernel's floor for the benchmark's launch, as a whole process.
 *
 *     floor [--share-net] ROOT
 *
 * Only the syscalls the work needs, nothing else: one clone creating the user, mount, pid,
 * net, uts, ipc and cgroup namespaces; the parent writes the id maps (inside 0..65535 ->
 * outside 100000.., as sandbox and crun do as root) and releases the child over a pipe; the
 * child binds ROOT, the host's /usr and /etc read-only, mounts a fresh /proc, pivots into
 * ROOT, remounts it read-only and execs /usr/bin/true as pid 1 (no init, no masked /proc
 * paths, no capability or seccomp work). The parent waits and returns the child's status.
 * ROOT must hold empty usr/, etc/ and proc/ directories (bench/run.sh makes it).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void die(const char *what)
{
    fprintf(stderr, "floor: %s: %s\n", what, strerror(errno));
    _exit(125);
}

static void write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
        die(path);
    close(fd);
}

/* nosuid and nodev as bwrap and sandbox add them; a remount keeps the default relatime. */
#define RO (MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)

static void bind_ro(const char *source, const char *target)
{
    if (mount(source, target, NULL, MS_BIND, NULL) < 0)
        die(target);
    if (mount(NULL, target, NULL, RO, NULL) < 0)
        die(target);
}

static int child(const char *root, int go)
{
    char byte, usr[4096], etc[4096], proc[4096];
    if (read(go, &byte, 1) != 1)
        die("waiting for the id maps");
    snprintf(usr, sizeof usr, "%s/usr", root);
    snprintf(etc, sizeof etc, "%s/etc", root);
    snprintf(proc, sizeof proc, "%s/proc", root);
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        die("making mounts private");
    if (mount(root, root, NULL, MS_BIND, NULL) < 0)
        die(root);
    bind_ro("/usr", usr);
    bind_ro("/etc", etc);
    if (mount("proc", proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
        die(proc);
    if (chdir(root) < 0)
        die(root);
    if (syscall(SYS_pivot_root, ".", ".") < 0)
        die("pivot_root");
    if (umount2(".", MNT_DETACH) < 0)
        die("detaching the old root");
    if (chdir("/") < 0)
        die("chdir /");
    if (mount(NULL, "/", NULL, RO, NULL) < 0)
        die("remounting / read-only");
    char *argv[] = {"true", NULL};
    char *envp[] = {NULL};
    execve("/usr/bin/true", argv, envp);
    die("exec /usr/bin/true");
    return 125;
}

int main(int argc, char **argv)
{
    int share_net = argc == 3 && strcmp(argv[1], "--share-net") == 0;
    if (argc != 2 + share_net) {
        fprintf(stderr, "usage: floor [--share-net] ROOT\n");
        return 2;
    }
    const char *root = argv[argc - 1];
    int go[2];
    if (pipe2(go, O_CLOEXEC) < 0)
        die("pipe2");
    long flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC |
                 CLONE_NEWCGROUP | SIGCHLD;
    if (!share_net)
        flags |= CLONE_NEWNET;
    /* A raw clone without a new stack returns twice, like fork. */
    pid_t pid = syscall(SYS_clone, flags, NULL, NULL, NULL, NULL);
    if (pid < 0)
        die("clone");
    if (pid == 0) {
        close(go[1]);
        return child(root, go[0]);
    }
    close(go[0]);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/uid_map", pid);
    write_file(path, "0 100000 65536\n");
    snprintf(path, sizeof path, "/proc/%d/gid_map", pid);
    write_file(path, "0 100000 65536\n");
    if (write(go[1], "g", 1) != 1)
        die("releasing the child");
    int status;
    if (waitpid(pid, &status, 0) < 0)
        die("waitpid");
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
