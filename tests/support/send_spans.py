"""Sends the spans of tests/traces.rs with the official OpenTelemetry Python SDK and OTLP exporter.

Two services call each other, as instrumented code would report it: `front` serves GET /checkout
(a root SERVER span) and calls `back` (a CLIENT span); `back` serves that call (a SERVER span whose
parent is front's CLIENT span, as context propagation makes it) and calls an uninstrumented Redis
(a CLIENT span with db.system=redis that no server span answers). Every fifth call fails in back.

usage: send_spans.py http|grpc ENDPOINT CALLS SUFFIX [BACK_ENDPOINT]
  ENDPOINT: http://127.0.0.1:PORT/v1/traces for http, 127.0.0.1:PORT for grpc
  SUFFIX:   appended to the service names, so runs never share series
  BACK_ENDPOINT: where `back` sends (as if it ran on another node); default ENDPOINT
Durations are fixed (timestamps given explicitly), so the test knows every bucket.
"""

import sys
import time

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

protocol, endpoint, calls, suffix = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
back_endpoint = sys.argv[5] if len(sys.argv) > 5 else endpoint

if protocol == "http":
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    def exporter(to):
        return OTLPSpanExporter(endpoint=to)
elif protocol == "grpc":
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    def exporter(to):
        return OTLPSpanExporter(endpoint=to, insecure=True)
else:
    sys.exit(f"unknown protocol {protocol}")


def provider(service, to):
    p = TracerProvider(resource=Resource.create({"service.name": service + suffix}))
    p.add_span_processor(BatchSpanProcessor(exporter(to)))
    return p


front_p, back_p = provider("front", endpoint), provider("back", back_endpoint)
front, back = front_p.get_tracer("shop.front"), back_p.get_tracer("shop.back")
MS = 1_000_000

for i in range(calls):
    t = time.time_ns()
    root = front.start_span("GET /checkout", kind=SpanKind.SERVER, start_time=t)
    ctx = trace.set_span_in_context(root)
    call = front.start_span("GET /stock", context=ctx, kind=SpanKind.CLIENT, start_time=t + 5 * MS)
    served = back.start_span(
        "GET /stock",
        context=trace.set_span_in_context(call),
        kind=SpanKind.SERVER,
        start_time=t + 10 * MS,
    )
    db = back.start_span(
        "GET",
        context=trace.set_span_in_context(served),
        kind=SpanKind.CLIENT,
        start_time=t + 12 * MS,
        attributes={"db.system": "redis"},
    )
    db.end(end_time=t + 15 * MS)  # 3 ms
    if i % 5 == 0:
        served.set_status(Status(StatusCode.ERROR, "out of stock"))
    served.end(end_time=t + 40 * MS)  # 30 ms
    call.end(end_time=t + 45 * MS)  # 40 ms
    root.end(end_time=t + 125 * MS)  # 125 ms

for p in (front_p, back_p):
    p.force_flush()
    p.shutdown()
print(f"sent {calls * 4} spans over {protocol}")
