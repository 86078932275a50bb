/*
 * TZif time zone files (RFC 8536, versions 2 to 4) and the POSIX TZ rule
 * in their footer: read one zone, then answer "which UTC offset, DST flag
 * and abbreviation are in force at instant t" without any process-wide
 * state (no TZ variable, no tzset()).  timeutil.c builds the scheduler's
 * conversions and its zone cache on top of this.
 *
 * A zone is immutable once parsed; lookups are pure.  Times are seconds of
 * POSIX time as int64_t, so any instant works, not only time_t's range.
 */
#ifndef OH_TZFILE_H
#define OH_TZFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Where the zones live unless TZDIR names another directory. */
#define TZFILE_DEFAULT_DIR "/usr/share/zoneinfo"

/* Largest file tzfile_load() reads.  Debian's biggest zone is under 4 KiB. */
#define TZFILE_MAX_BYTES (256 * 1024)

/* No offset in tzdata reaches 26 hours (LMT included); zones that claim
 * one are refused, so callers may search within this distance. */
#define TZFILE_MAX_OFFSET (26 * 3600)

struct tzfile;

/* What is in force at an instant. */
struct tzfile_info {
	int32_t utoff; /* seconds east of UTC (CEST: 7200) */
	bool isdst;
	const char *abbr; /* "CEST", "+0545"; borrowed from the zone */
	/* The three fields above hold for every instant from the one asked
	 * about up to, not including, `until` (> that instant).  It is often,
	 * not always, the next change: callers compare and go on.  INT64_MAX:
	 * for ever. */
	int64_t until;
};

/*
 * 1 if name (borrowed) may be looked up under a zone directory: a relative
 * path, at most 255 bytes, of components made of [A-Za-z0-9._+-] that are
 * not empty and do not start with '.' (so no "." or ".."), and neither the
 * "right/" leap-second variants (their clock is not POSIX time) nor the
 * "localtime" link (the host's zone, not an IANA name).  0 otherwise.
 */
int tzfile_name_ok(const char *name);

/*
 * Read and parse dir/name (both borrowed; dir is the zone directory, e.g.
 * TZFILE_DEFAULT_DIR) into *out (returned: free with tzfile_free()).  The
 * name must pass tzfile_name_ok() and name a regular file (symbolic links
 * are followed: tzdata links zones to each other); a FIFO or device there
 * is refused without blocking.  This is a small blocking file read.
 * Errors: OH_ERR_INVAL (bad name, not a regular file, not a valid TZif
 * file, see tzfile_parse()), OH_ERR_NOT_FOUND (no such file),
 * OH_ERR_TOO_LARGE (over TZFILE_MAX_BYTES), OH_ERR_IO (read failed),
 * OH_ERR_NOMEM.
 */
int tzfile_load(const char *dir, const char *name, struct tzfile **out);

/*
 * Parse a TZif file held in data (borrowed, len bytes) into *out
 * (returned: free with tzfile_free()).  Only the 64-bit data of version 2+
 * files is used; version 1 files are refused (their 32-bit times end in
 * 2038), and so are files with leap-second records ("right/" zones, whose
 * time_t counts leap seconds).  The footer's POSIX TZ string, RFC 8536
 * extensions included (rule times -167..167 hours, DST all year), rules
 * from the last transition on.  Before the first transition
 * time type 0 applies; a file without transitions follows its footer (or
 * type 0 if it has none).
 * Errors: OH_ERR_INVAL (malformed, or an offset beyond TZFILE_MAX_OFFSET),
 * OH_ERR_NOMEM.
 */
int tzfile_parse(const void *data, size_t len, struct tzfile **out);

/* Free a zone; NULL is fine.  Abbreviations it handed out die with it. */
void tzfile_free(struct tzfile *z);

/* What z (borrowed) has in force at instant t, into *out (borrowed). */
void tzfile_lookup(const struct tzfile *z, int64_t t, struct tzfile_info *out);

/* The footer's TZ string ("" when the file has none), borrowed from z. */
const char *tzfile_footer(const struct tzfile *z);

#endif
