"""WebSocket close codes the server uses, in one place so docs and clients can rely on them."""

NORMAL = 1000
# The server is shutting down or restarting; reconnect and resume with `since`.
GOING_AWAY = 1001
INTERNAL_ERROR = 1011
# The client fell too far behind live delivery and its buffer overflowed; reconnect and resume with `since`.
SLOW_CONSUMER = 4008
# The client sent too many invalid frames in a row; it is misbehaving, not merely unlucky.
TOO_MANY_ERRORS = 4002
# This client address already has MAX_CONNECTIONS_PER_IP connections open; close one (or wait) before retrying.
TOO_MANY_CONNECTIONS = 4029

REASONS = {
    SLOW_CONSUMER: "slow consumer: reconnect and resume with since",
    TOO_MANY_ERRORS: "too many invalid frames",
    TOO_MANY_CONNECTIONS: "too many connections from this address",
    GOING_AWAY: "server shutting down: reconnect and resume with since",
    INTERNAL_ERROR: "internal error",
}
