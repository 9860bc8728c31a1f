#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>
static long count;
static void *run(void *arg) {
    (void)arg;
    printf("thread pid %d tid %ld\n", getpid(), (long)syscall(SYS_gettid));
    fflush(stdout);
    for (long i = 0; i < count; i++) {
        int fd = openat(AT_FDCWD, "/etc/hostname", O_RDONLY);
        if (fd >= 0) close(fd);
    }
    return NULL;
}
int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    count = argc > 2 ? atol(argv[2]) : 1000;
    pthread_t t[64];
    for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, run, NULL);
    for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    printf("done: %d threads x %ld openat\n", threads, count);
    return 0;
}
