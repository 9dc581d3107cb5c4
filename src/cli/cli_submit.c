/*
 * cli_submit - hand a message to `sluice sendmail` (this very binary,
 * re-executed from an argument vector: no shell, P4). sendmail submits to
 * a running sluiced or leaves the message in the maildrop, so the caller
 * needs nothing but the config path. The message goes through a pipe,
 * never on a command line (it may hold a secret, see account reset).
 */
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "buf.h"
#include "cli.h"

#define SUBMIT_ARGS	8	/* sluice -c CFG sendmail -i -f FROM -- */

int
cli_sendmail_pipe(const char *cfgpath, const char *from,
    const char *const *rcpts, size_t nrcpts, const void *msg, size_t len)
{
	char		**argv;
	pid_t		 pid;
	size_t		 i;
	int		 p[2], st, wrc, err;
	void		(*oldpipe)(int);

	if (nrcpts == 0 || nrcpts > SIZE_MAX / sizeof(char *) - SUBMIT_ARGS - 1)
		return EX_USAGE;
	if ((argv = calloc(SUBMIT_ARGS + nrcpts + 1, sizeof(char *))) == NULL) {
		cli_err("sendmail: %s", strerror(errno));
		return EX_OSERR;
	}
	argv[0] = (char *)"sluice";
	argv[1] = (char *)"-c";
	argv[2] = (char *)cfgpath;
	argv[3] = (char *)"sendmail";
	argv[4] = (char *)"-i";
	argv[5] = (char *)"-f";
	argv[6] = (char *)from;
	argv[7] = (char *)"--";
	for (i = 0; i < nrcpts; i++)
		argv[SUBMIT_ARGS + i] = (char *)rcpts[i];
	if (pipe2(p, O_CLOEXEC) == -1) {
		cli_err("sendmail: pipe: %s", strerror(errno));
		free(argv);
		return EX_OSERR;
	}
	fflush(NULL);
	if ((pid = fork()) == -1) {
		err = errno;
		close(p[0]);
		close(p[1]);
		free(argv);
		cli_err("sendmail: fork: %s", strerror(err));
		return EX_OSERR;
	}
	if (pid == 0) {
		signal(SIGPIPE, SIG_DFL);
		if (dup2(p[0], STDIN_FILENO) == -1)
			_exit(EX_OSERR);
		execv("/proc/self/exe", argv);
		_exit(EX_OSERR);
	}
	free(argv);
	close(p[0]);
	/* a sendmail that exits early must not kill us: its status tells */
	oldpipe = signal(SIGPIPE, SIG_IGN);
	wrc = write_all(p[1], msg, len);
	close(p[1]);
	signal(SIGPIPE, oldpipe);
	while (waitpid(pid, &st, 0) == -1)
		if (errno != EINTR)
			return EX_OSERR;
	if (!WIFEXITED(st))
		return EX_TEMPFAIL;
	if (WEXITSTATUS(st) != 0)
		return WEXITSTATUS(st);
	return wrc == -1 ? EX_TEMPFAIL : EX_OK;
}
