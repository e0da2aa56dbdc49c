"""Every name buttress emits: metrics, labels, span attributes, span and log events.

These strings are public API (docs/metrics.md is their contract). Dashboards, SLO rules,
listeners and middleware read them from here, so a rename happens in exactly one place.
HTTP names follow the OpenTelemetry semantic conventions as Prometheus renders them, so
our dashboards and rules also work on services instrumented by OpenTelemetry itself.
"""

from __future__ import annotations

from typing import Final

# --- metric label names ------------------------------------------------------------------

LABEL_METHOD: Final = "http_request_method"
LABEL_ROUTE: Final = "http_route"
LABEL_STATUS: Final = "http_response_status_code"
LABEL_SERVER_ADDRESS: Final = "server_address"
LABEL_POLICY: Final = "policy"
LABEL_OUTCOME: Final = "outcome"
LABEL_ERROR_TYPE: Final = "error_type"
LABEL_STATE: Final = "state"
LABEL_FROM_STATE: Final = "from_state"
LABEL_TO_STATE: Final = "to_state"
LABEL_REASON: Final = "reason"
LABEL_STORE: Final = "store"
LABEL_KIND: Final = "kind"

# Route label for requests no route matched: every unmatched path shares it, so clients
# sending random paths cannot grow the number of series.
ROUTE_UNMATCHED: Final = "<unmatched>"
# Method label for methods outside the known set (a client can send any token).
METHOD_OTHER: Final = "_OTHER"

# --- HTTP server (middleware) ------------------------------------------------------------

HTTP_SERVER_DURATION: Final = "http_server_request_duration_seconds"
HTTP_SERVER_ACTIVE: Final = "http_server_active_requests"
HTTP_SERVER_RESPONSE_SIZE: Final = "http_server_response_body_size_bytes"
HTTP_SERVER_REQUEST_SIZE: Final = "http_server_request_body_size_bytes"

# --- websockets (ASGI middleware) --------------------------------------------------------

WEBSOCKET_ACTIVE: Final = "buttress_websocket_active_connections"
WEBSOCKET_DURATION: Final = "buttress_websocket_connection_duration_seconds"
WEBSOCKET_MESSAGES: Final = "buttress_websocket_messages_total"
LABEL_DIRECTION: Final = "direction"
DIRECTION_RECEIVED: Final = "received"
DIRECTION_SENT: Final = "sent"
# error.type of a websocket the app closed before accepting it.
ERROR_HANDSHAKE_REJECTED: Final = "handshake_rejected"

# --- HTTP client (transports) ------------------------------------------------------------

HTTP_CLIENT_DURATION: Final = "http_client_request_duration_seconds"
HTTP_CLIENT_ACTIVE: Final = "http_client_active_requests"
# Outbound requests the caller's own deadline stopped: never sent (reason "spent") or cut
# short in flight ("cut"). They are not in the client duration histogram, not breaker
# failures and not retried: the dependency did nothing wrong.
HTTP_CLIENT_DEADLINE_EXCEEDED: Final = "buttress_http_client_deadline_exceeded_total"
DEADLINE_SPENT: Final = "spent"
DEADLINE_CUT: Final = "cut"

# Bucket boundaries advised by the OpenTelemetry HTTP conventions, in seconds. SLO
# latency thresholds are merged into these, so latency SLIs read exact bucket counts.
DURATION_BUCKETS: Final = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip
SIZE_BUCKETS: Final = (100.0, 1_000.0, 10_000.0, 100_000.0, 1_000_000.0, 10_000_000.0)

# --- resilience ----------------------------------------------------------------------------

RETRY_ATTEMPTS: Final = "buttress_retry_attempts_total"
RETRY_CALLS: Final = "buttress_retry_calls_total"
BREAKER_STATE: Final = "buttress_circuit_breaker_state"
BREAKER_TRANSITIONS: Final = "buttress_circuit_breaker_transitions_total"
BREAKER_REJECTIONS: Final = "buttress_circuit_breaker_rejections_total"
BREAKER_CALLS: Final = "buttress_circuit_breaker_calls_total"
BULKHEAD_IN_USE: Final = "buttress_bulkhead_in_use"
BULKHEAD_WAITING: Final = "buttress_bulkhead_waiting"
BULKHEAD_CAPACITY: Final = "buttress_bulkhead_capacity"
BULKHEAD_REJECTIONS: Final = "buttress_bulkhead_rejections_total"
RATE_LIMITER_REJECTIONS: Final = "buttress_rate_limiter_rejections_total"
RATE_LIMITER_WAITS: Final = "buttress_rate_limiter_waits_total"
TIMEOUTS: Final = "buttress_timeouts_total"
FALLBACKS: Final = "buttress_fallbacks_total"
STORE_ERRORS: Final = "buttress_store_errors_total"
STORE_DEGRADED: Final = "buttress_store_degraded"
FAULTS_INJECTED: Final = "buttress_faults_injected_total"
HEDGES_SENT: Final = "buttress_hedges_sent_total"
HEDGES_WON: Final = "buttress_hedges_won_total"
THROTTLE_REJECTIONS: Final = "buttress_throttle_rejections_total"
THROTTLE_ACCEPTANCE: Final = "buttress_throttle_acceptance_ratio"

# --- inbound admission (middleware) --------------------------------------------------------

ADMISSION_REQUESTS: Final = "buttress_admission_requests_total"
ADMISSION_LIMIT: Final = "buttress_admission_limit"
ADMISSION_IN_FLIGHT: Final = "buttress_admission_in_flight"
LABEL_CRITICALITY: Final = "criticality"
CRITICALITY_HEADER: Final = "X-Buttress-Criticality"

# --- span attributes (stable HTTP semantic conventions, plus ours) --------------------------

ATTR_HTTP_REQUEST_METHOD: Final = "http.request.method"
ATTR_HTTP_REQUEST_METHOD_ORIGINAL: Final = "http.request.method_original"
ATTR_HTTP_ROUTE: Final = "http.route"
ATTR_HTTP_RESPONSE_STATUS_CODE: Final = "http.response.status_code"
ATTR_HTTP_RESEND_COUNT: Final = "http.request.resend_count"
ATTR_URL_PATH: Final = "url.path"
ATTR_URL_QUERY: Final = "url.query"
ATTR_URL_SCHEME: Final = "url.scheme"
ATTR_URL_FULL: Final = "url.full"
ATTR_SERVER_ADDRESS: Final = "server.address"
ATTR_SERVER_PORT: Final = "server.port"
ATTR_CLIENT_ADDRESS: Final = "client.address"
ATTR_CLIENT_PORT: Final = "client.port"
ATTR_HTTP_REQUEST_BODY_SIZE: Final = "http.request.body.size"
ATTR_USER_AGENT: Final = "user_agent.original"
ATTR_NETWORK_PROTOCOL_VERSION: Final = "network.protocol.version"
ATTR_ERROR_TYPE: Final = "error.type"
ATTR_REQUEST_ID: Final = "buttress.request_id"
ATTR_NETWORK_PROTOCOL_NAME: Final = "network.protocol.name"
ATTR_WEBSOCKET_CLOSE_CODE: Final = "buttress.websocket.close_code"
ATTR_WEBSOCKET_RECEIVED: Final = "buttress.websocket.messages_received"
ATTR_WEBSOCKET_SENT: Final = "buttress.websocket.messages_sent"
ATTR_POLICY: Final = "buttress.policy"
ATTR_OUTCOME: Final = "buttress.outcome"
ATTR_RETRY_ATTEMPT: Final = "buttress.retry.attempt"
ATTR_RETRY_WAIT: Final = "buttress.retry.wait_seconds"
ATTR_BREAKER_STATE: Final = "buttress.breaker.state"
ATTR_BREAKER_FROM_STATE: Final = "buttress.breaker.from_state"
ATTR_BREAKER_TO_STATE: Final = "buttress.breaker.to_state"
ATTR_REASON: Final = "buttress.reason"
ATTR_RETRY_AFTER: Final = "buttress.retry_after_seconds"
ATTR_TIMEOUT: Final = "buttress.timeout_seconds"
ATTR_STORE: Final = "buttress.store"
ATTR_FAULT_KIND: Final = "buttress.fault.kind"
ATTR_HEDGE_ATTEMPT: Final = "buttress.hedge.attempt"
ATTR_HEDGE_DELAY: Final = "buttress.hedge.delay_seconds"
ATTR_THROTTLE_PROBABILITY: Final = "buttress.throttle.probability"
ATTR_ADMISSION_OUTCOME: Final = "buttress.admission.outcome"
ATTR_ADMISSION_CRITICALITY: Final = "buttress.admission.criticality"
ATTR_RATE_LIMIT: Final = "buttress.rate_limit"  # the rule that refused the request
ATTR_ADMISSION_LIMIT: Final = "buttress.admission.limit"
ATTR_ADMISSION_IN_FLIGHT: Final = "buttress.admission.in_flight"
# Whether the server span's sender was a trusted peer (its deadline, request id, baggage
# and trace were honoured); see docs/security.md.
ATTR_PEER_TRUSTED: Final = "buttress.peer.trusted"
# On a client span that timed out: "deadline" when the caller's own budget cut the
# attempt short, "dependency" when the dependency was slower than its own timeout.
ATTR_TIMEOUT_CAUSE: Final = "buttress.timeout.cause"
TIMEOUT_CAUSE_DEADLINE: Final = "deadline"
TIMEOUT_CAUSE_DEPENDENCY: Final = "dependency"

# --- correlation ---------------------------------------------------------------------------

REQUEST_ID_HEADER: Final = "X-Request-ID"
DEADLINE_HEADER: Final = "X-Buttress-Deadline"
LOG_KEY_REQUEST_ID: Final = "request_id"
LOG_KEY_TRACE_ID: Final = "trace_id"
LOG_KEY_SPAN_ID: Final = "span_id"

# --- log fields of resilience log events (besides the label names above) --------------------

LOG_KEY_ATTEMPT: Final = "attempt"
LOG_KEY_ATTEMPTS: Final = "attempts"
LOG_KEY_WAIT: Final = "wait_seconds"
LOG_KEY_TIMEOUT: Final = "timeout_seconds"
LOG_KEY_RETRY_AFTER: Final = "retry_after_seconds"
LOG_KEY_HEDGE_ATTEMPT: Final = "hedge_attempt"
LOG_KEY_DELAY: Final = "delay_seconds"
LOG_KEY_PROBABILITY: Final = "probability"
LOG_KEY_ADMISSION: Final = "admission"  # on access lines: the admission outcome
LOG_KEY_RATE_LIMIT: Final = "rate_limit"
LOG_KEY_LIMIT: Final = "limit"
LOG_KEY_IN_FLIGHT: Final = "in_flight"

# --- log and span event names ----------------------------------------------------------------

EVENT_ACCESS: Final = "http.request"
EVENT_WEBSOCKET: Final = "websocket.connection"
EVENT_RETRY_SCHEDULED: Final = "buttress.retry.scheduled"
EVENT_RETRY_FINISHED: Final = "buttress.retry.finished"
EVENT_BREAKER_TRANSITION: Final = "buttress.breaker.transition"
EVENT_BREAKER_REJECTED: Final = "buttress.breaker.rejected"
EVENT_BULKHEAD_REJECTED: Final = "buttress.bulkhead.rejected"
EVENT_RATE_LIMITED: Final = "buttress.rate_limiter.rejected"
EVENT_RATE_LIMIT_WAITED: Final = "buttress.rate_limiter.waited"
EVENT_TIMEOUT: Final = "buttress.timeout"
EVENT_FALLBACK: Final = "buttress.fallback"
EVENT_STORE_UNAVAILABLE: Final = "buttress.store.unavailable"
EVENT_STORE_RECOVERED: Final = "buttress.store.recovered"
EVENT_FAULT_INJECTED: Final = "buttress.fault.injected"
EVENT_HEDGE_SENT: Final = "buttress.hedge.sent"
EVENT_HEDGE_WON: Final = "buttress.hedge.won"
EVENT_THROTTLE_REJECTED: Final = "buttress.throttle.rejected"
EVENT_ADMISSION: Final = "buttress.admission.decided"
EVENT_ADMISSION_LIMIT: Final = "buttress.admission.limit_updated"

# --- SLO rules ---------------------------------------------------------------------------------
# Recording rules and labels carry Sloth's names, so dashboards built for Sloth keep working.

SLO_SLI_ERROR_RATIO: Final = "slo:sli_error:ratio_rate"  # + window: slo:sli_error:ratio_rate5m
SLO_SLI_ERROR_EVENTS: Final = "slo:sli_error:increase"  # + window: bad events in the window
SLO_SLI_TOTAL_EVENTS: Final = "slo:sli_total:increase"  # + window: all events in the window
SLO_OBJECTIVE: Final = "slo:objective:ratio"
SLO_ERROR_BUDGET: Final = "slo:error_budget:ratio"
SLO_TIME_PERIOD_DAYS: Final = "slo:time_period:days"
SLO_CURRENT_BURN_RATE: Final = "slo:current_burn_rate:ratio"
SLO_PERIOD_BURN_RATE: Final = "slo:period_burn_rate:ratio"
SLO_PERIOD_BUDGET_REMAINING: Final = "slo:period_error_budget_remaining:ratio"
SLO_INFO: Final = "sloth_slo_info"
LABEL_SLO_ID: Final = "sloth_id"
LABEL_SLO_SERVICE: Final = "sloth_service"
LABEL_SLO_NAME: Final = "sloth_slo"
LABEL_SLO_WINDOW: Final = "sloth_window"
LABEL_SLO_SEVERITY: Final = "sloth_severity"
LABEL_SLO_MODE: Final = "sloth_mode"  # on sloth_slo_info: who generated the rules
LABEL_SLO_OBJECTIVE: Final = "sloth_objective"  # on sloth_slo_info, in percent: "99.9"
LABEL_SLO_SPEC: Final = "sloth_spec"  # on sloth_slo_info: "prometheus/v1"
LABEL_SLO_VERSION: Final = "sloth_version"  # on sloth_slo_info: who generated the rules, versioned
LABEL_SLO_CATEGORY: Final = "category"  # on alerts: "availability" or "latency"
LABEL_SEVERITY: Final = "severity"
ALERT_SLO_BURN: Final = "ButtressSLOErrorBudgetBurn"
ALERT_SLO_METRIC_ABSENT: Final = "ButtressSLOMetricAbsent"
ANNOTATION_RUNBOOK_URL: Final = "runbook_url"

# --- Prometheus's own names that dashboards and rules read --------------------------------------

PROMETHEUS_ALERTS: Final = "ALERTS"  # pending and firing alerts, kept by Prometheus itself
LABEL_ALERT_NAME: Final = "alertname"
LABEL_ALERT_STATE: Final = "alertstate"
LABEL_JOB: Final = "job"
LABEL_INSTANCE: Final = "instance"
LABEL_LE: Final = "le"

# --- middleware outcomes -------------------------------------------------------------------

# Status label of a request whose client went away before any response started (the code
# nginx logs for it); the span's error.type says the same in words.
STATUS_CLIENT_CLOSED: Final = "499"
# Status label for codes outside 100-599 (an app or upstream can answer any integer).
STATUS_OTHER: Final = "_OTHER"
ERROR_CLIENT_DISCONNECT: Final = "client_disconnect"

# --- OpenTelemetry instruments (OTLP, console): semconv names, units in UCUM ---------------------
# What the Prometheus names above are called when exported through OpenTelemetry. A collector
# that translates them to Prometheus gives back the names above (dots become underscores, the
# unit becomes a suffix, counters end in _total), so dashboards and rules read either.

OTEL_HTTP_SERVER_DURATION: Final = "http.server.request.duration"
OTEL_HTTP_SERVER_ACTIVE: Final = "http.server.active_requests"
OTEL_HTTP_CLIENT_DURATION: Final = "http.client.request.duration"
OTEL_HTTP_CLIENT_ACTIVE: Final = "http.client.active_requests"
# Prometheus name -> (OpenTelemetry name, unit) of each resilience instrument.
OTEL_RESILIENCE: Final = {
    RETRY_ATTEMPTS: ("buttress.retry.attempts", "{attempt}"),
    RETRY_CALLS: ("buttress.retry.calls", "{call}"),
    BREAKER_STATE: ("buttress.circuit_breaker.state", "1"),
    BREAKER_TRANSITIONS: ("buttress.circuit_breaker.transitions", "{transition}"),
    BREAKER_REJECTIONS: ("buttress.circuit_breaker.rejections", "{call}"),
    BREAKER_CALLS: ("buttress.circuit_breaker.calls", "{call}"),
    BULKHEAD_IN_USE: ("buttress.bulkhead.in_use", "{slot}"),
    BULKHEAD_WAITING: ("buttress.bulkhead.waiting", "{call}"),
    BULKHEAD_CAPACITY: ("buttress.bulkhead.capacity", "{slot}"),
    BULKHEAD_REJECTIONS: ("buttress.bulkhead.rejections", "{call}"),
    RATE_LIMITER_REJECTIONS: ("buttress.rate_limiter.rejections", "{call}"),
    RATE_LIMITER_WAITS: ("buttress.rate_limiter.waits", "{call}"),
    TIMEOUTS: ("buttress.timeouts", "{call}"),
    FALLBACKS: ("buttress.fallbacks", "{call}"),
    STORE_ERRORS: ("buttress.store.errors", "{error}"),
    STORE_DEGRADED: ("buttress.store.degraded", "1"),
    FAULTS_INJECTED: ("buttress.faults.injected", "{fault}"),
    HEDGES_SENT: ("buttress.hedges.sent", "{attempt}"),
    HEDGES_WON: ("buttress.hedges.won", "{attempt}"),
    THROTTLE_REJECTIONS: ("buttress.throttle.rejections", "{call}"),
    THROTTLE_ACCEPTANCE: ("buttress.throttle.acceptance", "1"),
    HTTP_CLIENT_DEADLINE_EXCEEDED: ("buttress.http.client.deadline_exceeded", "{request}"),
    ADMISSION_REQUESTS: ("buttress.admission.requests", "{request}"),
    ADMISSION_LIMIT: ("buttress.admission.limit", "{request}"),
    ADMISSION_IN_FLIGHT: ("buttress.admission.in_flight", "{request}"),
}
# The resource as labels of the `target_info` family on /metrics (OpenTelemetry's rendering).
TARGET_INFO: Final = "target"  # prometheus_client appends _info
LOG_KEY_SERVICE: Final = "service"
LOG_KEY_SERVICE_VERSION: Final = "service_version"
LOG_KEY_ENVIRONMENT: Final = "deployment_environment"

# --- jobs and message consumers (buttress.jobs) ---------------------------------------------
# Processing follows the OpenTelemetry messaging conventions as Prometheus renders them;
# destination labels are consumer or task names from configuration, never message data.

LABEL_MESSAGING_SYSTEM: Final = "messaging_system"
LABEL_MESSAGING_DESTINATION: Final = "messaging_destination_name"
LABEL_CONSUMER_GROUP: Final = "messaging_consumer_group_name"
MESSAGING_PROCESS_DURATION: Final = "messaging_process_duration_seconds"
MESSAGE_REDELIVERIES: Final = "buttress_message_redeliveries_total"
MESSAGES_DEAD_LETTERED: Final = "buttress_messages_dead_lettered_total"
IDEMPOTENCY_CHECKS: Final = "buttress_idempotency_checks_total"
CONSUMER_LAG: Final = "buttress_consumer_lag_messages"
CONSUMER_PENDING: Final = "buttress_consumer_pending_messages"
MESSAGES_CLAIMED: Final = "buttress_messages_claimed_total"
# Outcomes of one delivery (label outcome of MESSAGING_PROCESS_DURATION, buttress.outcome on spans).
JOB_SUCCESS: Final = "success"
JOB_RETRY: Final = "retry"
JOB_DEAD_LETTER: Final = "dead_letter"
JOB_DUPLICATE: Final = "duplicate"
JOB_EXPIRED: Final = "expired"
# Why a message was dead-lettered (label reason of MESSAGES_DEAD_LETTERED).
DEAD_LETTER_MAX_DELIVERIES: Final = "max_deliveries"
DEAD_LETTER_NON_RETRYABLE: Final = "non_retryable"
# Outcomes of an idempotency check (label outcome of IDEMPOTENCY_CHECKS).
IDEMPOTENCY_FIRST: Final = "first"
IDEMPOTENCY_DUPLICATE: Final = "duplicate"
IDEMPOTENCY_IN_PROGRESS: Final = "in_progress"
IDEMPOTENCY_TAKEN_OVER: Final = "taken_over"
# Message headers written by producers and read by consumers (lower case: brokers differ).
HEADER_TRACEPARENT: Final = "traceparent"
HEADER_TRACESTATE: Final = "tracestate"
MESSAGE_REQUEST_ID_HEADER: Final = "x-request-id"
MESSAGE_DEADLINE_HEADER: Final = "x-buttress-deadline"
# Span attributes of consumer and producer spans (OpenTelemetry messaging conventions).
ATTR_MESSAGING_SYSTEM: Final = "messaging.system"
ATTR_MESSAGING_DESTINATION: Final = "messaging.destination.name"
ATTR_MESSAGING_OPERATION_TYPE: Final = "messaging.operation.type"
ATTR_MESSAGING_OPERATION_NAME: Final = "messaging.operation.name"
ATTR_MESSAGING_MESSAGE_ID: Final = "messaging.message.id"
ATTR_MESSAGING_CONSUMER_GROUP: Final = "messaging.consumer.group.name"
ATTR_MESSAGE_DELIVERY: Final = "buttress.message.delivery"
ATTR_PRODUCER_TRUSTED: Final = "buttress.producer.trusted"
EVENT_MESSAGE: Final = "messaging.process"
LOG_KEY_MESSAGE_ID: Final = "message_id"
LOG_KEY_DELIVERY: Final = "delivery"
LOG_KEY_DESTINATION: Final = "destination"
LOG_KEY_DURATION_MS: Final = "duration_ms"
