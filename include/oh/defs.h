/*
 * Error codes shared by the host and its plugins.
 *
 * Every public function that can fail returns one of these; OH_OK is zero so
 * callers can write `if(rc) return rc;`.
 */
#ifndef OH_DEFS_H
#define OH_DEFS_H

#ifdef __cplusplus
extern "C" {
#endif

enum oh_err {
	OH_OK = 0,
	OH_ERR_INVAL,     /* an argument or input is malformed */
	OH_ERR_NOMEM,     /* allocation failed */
	OH_ERR_NOT_FOUND, /* no such device, job, lease, route... */
	OH_ERR_EXISTS,    /* already registered */
	OH_ERR_IN_USE,    /* a lease is held by another actor */
	OH_ERR_NOT_OWNER, /* the lease belongs to someone else */
	OH_ERR_NOT_HELD,  /* no lease to renew or release */
	OH_ERR_DENIED,    /* outside the caller's namespace or rights */
	OH_ERR_IO,        /* the durable store or a socket failed */
	OH_ERR_NO_CONN,   /* the broker is not connected */
	OH_ERR_TOO_LARGE, /* input over a configured limit */
	OH_ERR_VERSION,   /* plugin ABI mismatch */
	OH_ERR_UNKNOWN
};

/* Identifier limits host, plugins and devices share: a device id is 1-64
 * characters of [A-Za-z0-9._-] (oh_device_id_valid), a request id at most
 * OH_REQ_ID_MAX bytes. */
#define OH_DEVICE_ID_MAX 64
#define OH_REQ_ID_MAX 199

/* A short, static, human-readable text for an error code. */
const char *oh_strerror(int err);

#ifdef __cplusplus
}
#endif
#endif
