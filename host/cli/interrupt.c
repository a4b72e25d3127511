/* See interrupt.h. */
#define _POSIX_C_SOURCE 200809L
#include "cli/interrupt.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t received;

static void on_signal(int sig)
{
    if (received) { /* the second: no more waiting */
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    received = sig;
    static const char msg[] = "\nvkdiff: interrupted; stopping (again to quit at once)\n";
    ssize_t n = write(2, msg, sizeof msg - 1); /* async-signal-safe, unlike stdio */
    (void)n;
}

void vkd_cli_interrupt_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART; /* file writes in progress carry on; sleeps return early */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int vkd_cli_interrupted(void) { return received; }
