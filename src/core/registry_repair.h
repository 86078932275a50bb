/*
 * Fetching the device meta that the wildcard subscription did not bring,
 * one exact topic at a time (see registry_repair.c for why).
 */
#ifndef OH_REGISTRY_REPAIR_H
#define OH_REGISTRY_REPAIR_H

#include <stddef.h>

struct host;
struct registry_repair;

struct registry_repair *registry_repair_new(struct host *h);
void registry_repair_free(struct registry_repair *rp);

/* Asks the broker for the device's retained meta; a no-op while a fetch for
 * it is queued, open, or was given up on less than a minute ago. */
void registry_repair_want(struct registry_repair *rp, const char *id);
/* The device's meta arrived, by whatever subscription: its fetch is over. */
void registry_repair_done(struct registry_repair *rp, const char *id);
/* The device is gone: forget it. */
void registry_repair_forget(struct registry_repair *rp, const char *id);
/* A new broker connection: open fetches went with the old one. */
void registry_repair_on_connect(struct registry_repair *rp);

/* Fetches queued or open, and fetches answered / given up since start. */
size_t registry_repair_pending(const struct registry_repair *rp);
unsigned long registry_repair_fetched(const struct registry_repair *rp);
unsigned long registry_repair_missed(const struct registry_repair *rp);

#endif
