"""Schemathesis hooks for fuzzing Switchboard (loaded via SCHEMATHESIS_HOOKS).

The run authenticates with one bearer token. Changing that operator's own
password revokes the token and demoting them removes their admin rights (both
by design), after which the rest of the run would only see 401/403. So a
request that would PATCH the fuzzing operator is aimed at another operator
(FUZZ_SPARE_ID) instead: the same request, fuzzed just as hard.
"""

import os

import schemathesis

SELF_ID = os.environ["FUZZ_SELF_ID"]
SPARE_ID = os.environ["FUZZ_SPARE_ID"]


@schemathesis.hook
def before_call(ctx, case, kwargs):
    if case.method.upper() == "PATCH" and case.operation.path == "/api/v1/users/{id}":
        if str((case.path_parameters or {}).get("id")) == SELF_ID:
            case.path_parameters["id"] = SPARE_ID
