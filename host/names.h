/*
 * names.h - the small vocabularies shared by the command line and the
 * config: what a valid title is, and the names of log levels.
 */
#ifndef PMHOST_NAMES_H
#define PMHOST_NAMES_H

#include <stddef.h>

#define TITLE_MAX	64	/* longest baseTitle */

/* Is s a valid baseTitle: [A-Za-z0-9_.-]{1,64}, and not "." or ".."? */
int		 title_valid(const char *s);

/* "debug".."error" to PM_LOG_DEBUG..PM_LOG_ERROR; -1 if unknown. */
int		 log_level_from_name(const char *name);

/* PM_LOG_* to its name; "?" if out of range. */
const char	*log_level_name(int level);

/* Case-insensitive edit distance of two words (SIZE_MAX without memory). */
size_t		 names_distance(const char *a, const char *b);

/* "debug, info, notice, warning, error", for messages. */
#define LOG_LEVEL_NAMES	"debug, info, notice, warning, error"

#endif
