"""Schemathesis hooks for fuzzing Switchboard (loaded via SCHEMATHESIS_HOOKS).

The runs authenticate with bearer tokens of two operators (the admin run's
and the user run's). Changing such an operator's password or deactivating
them revokes the token, and demoting them removes their admin rights (all by
design), after which the rest of the runs would only see 401/403. So a
request that would PATCH one of them (FUZZ_KEEP_IDS) is aimed at another
operator (FUZZ_SPARE_ID) instead: the same request, fuzzed just as hard.
"""

import os

import schemathesis

KEEP_IDS = set(os.environ["FUZZ_KEEP_IDS"].split(","))
SPARE_ID = os.environ["FUZZ_SPARE_ID"]


@schemathesis.hook
def before_call(ctx, case, kwargs):
    if case.method.upper() == "PATCH" and case.operation.path == "/api/v1/users/{id}":
        if str((case.path_parameters or {}).get("id")) in KEEP_IDS:
            case.path_parameters["id"] = SPARE_ID
