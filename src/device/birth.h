/*
 * The host's presence on {root}/orchestrator/status, as the agent reads it.
 * A host publishes {"online": true, "node", "ts"} retained at every
 * connect (its "birth"), and {"online": false, ...} as its last will and at
 * a clean stop.  A device answers each new birth by publishing its retained
 * meta and status again, as Home Assistant's devices re-announce their
 * discovery when HA's birth message comes: a host that starts on a broker
 * which lost the retained messages, or does not hand them to wildcard
 * subscriptions (RabbitMQ), still learns every device at once.
 *
 * The decision is a pure function of the state and one message, so it is
 * unit-tested without a broker (tests/unit/test_device_birth.c).
 */
#ifndef OH_DEVICE_BIRTH_H
#define OH_DEVICE_BIRTH_H

#include <stdbool.h>
#include <stddef.h>

/* Larger payloads are not a birth message of ours. */
#define BIRTH_MAX_PAYLOAD 4096

struct birth_state {
	char *answered; /* owned: "{node}\n{ts}" of the last birth seen, or NULL */
};

enum birth_action {
	BIRTH_IGNORE, /* nothing to do (already answered, offline, not ours) */
	BIRTH_ANSWER, /* publish meta and status again */
};

/*
 * Judges one message on the presence topic (payload borrowed, len bytes).
 * retained: the broker's flag under MQTT 3.1.1, i.e. the message was stored
 * before this connection subscribed; such a birth is older than what the
 * agent published on connecting, so it is recorded but not answered.
 * A birth whose node and ts are those recorded is ignored: the same birth
 * again.  An offline message forgets the record, so that a host back within
 * the same second (same ts) is still answered.  On BIRTH_IGNORE for bad
 * input, why says what was wrong (else it is set to "").
 */
enum birth_action birth_judge(struct birth_state *st, const void *payload, size_t len, bool retained,
		char *why, size_t whylen);

void birth_state_clear(struct birth_state *st);

#endif
