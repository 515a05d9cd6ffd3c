"""Delivery bookkeeping (protocol.md §4.4–§4.5, security-matrix invariant 9; FEDERATION.md "Delivery").

* `policy`   the retry policy as pure functions: classification, retry schedule, circuit breaker,
             what a batch of attempts does to its rows and hosts (no database)
* `claims`   leasing a fair batch of due rows (`claim_due`, one SQL statement per dialect)
* `records`  writing outcomes and host health, 410 Gone inboxes, `revive_host`, purging

The names below are the public API; `from fediverse_net.services.deliveries import X` keeps
working for every caller of the former single module.
"""

from fediverse_net.services.deliveries.claims import DEFAULT_LEASE, claim_due
from fediverse_net.services.deliveries.policy import (
    BREAKER_THRESHOLD,
    MAX_ATTEMPTS,
    RETRY_AFTER_CAP,
    UNAVAILABLE_AFTER_DAYS,
    Attempt,
    Claim,
    Outcome,
    breaker_cooloff,
    classify,
    next_attempt_at,
    retry_delay,
)
from fediverse_net.services.deliveries.records import (
    FINISHED_STATES,
    handle_gone_inbox,
    purge_finished,
    record_failure,
    record_outcomes,
    record_success,
    revive_host,
)

__all__ = [
    "BREAKER_THRESHOLD",
    "DEFAULT_LEASE",
    "FINISHED_STATES",
    "MAX_ATTEMPTS",
    "RETRY_AFTER_CAP",
    "UNAVAILABLE_AFTER_DAYS",
    "Attempt",
    "Claim",
    "Outcome",
    "breaker_cooloff",
    "claim_due",
    "classify",
    "handle_gone_inbox",
    "next_attempt_at",
    "purge_finished",
    "record_failure",
    "record_outcomes",
    "record_success",
    "retry_delay",
    "revive_host",
]
