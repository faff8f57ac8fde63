"""Sends the metrics of tests/otlp_metrics.rs with the official OpenTelemetry Python SDK and OTLP exporter.

One service reports, as instrumented code would: a Counter `shop.orders` (attribute `method`), an
UpDownCounter `shop.queue.items`, a synchronous Gauge `shop.temperature` (unit Cel) and a Histogram
`shop.request.duration` (unit ms, explicit buckets 10, 100, 1000), in two exports. With `delta`
the counter and histogram are exported with delta temporality (the collector adds them up).

usage: send_metrics.py http|grpc ENDPOINT SERVICE cumulative|delta [CONTAINER_ID]
  ENDPOINT: http://127.0.0.1:PORT/v1/metrics for http, 127.0.0.1:PORT for grpc
  CONTAINER_ID: reported as the resource's container.id (the collector attributes to it)
"""

import sys

from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource

protocol, endpoint, service, temporality = sys.argv[1:5]
resource = {"service.name": service}
if len(sys.argv) > 5:
    resource["container.id"] = sys.argv[5]
prefer = {}
if temporality == "delta":
    prefer = {Counter: AggregationTemporality.DELTA, Histogram: AggregationTemporality.DELTA}

if protocol == "http":
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    exporter = OTLPMetricExporter(endpoint=endpoint, preferred_temporality=prefer)
elif protocol == "grpc":
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

    exporter = OTLPMetricExporter(endpoint=endpoint, insecure=True, preferred_temporality=prefer)
else:
    sys.exit(f"unknown protocol {protocol}")

# Exports only when flushed (a long interval), so the test knows what each export holds.
reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
provider = MeterProvider(
    resource=Resource.create(resource),
    metric_readers=[reader],
    views=[
        View(
            instrument_name="shop.request.duration",
            aggregation=ExplicitBucketHistogramAggregation(boundaries=[10, 100, 1000]),
        )
    ],
)
meter = provider.get_meter("shop")
orders = meter.create_counter("shop.orders", unit="{order}", description="Orders placed.")
queue = meter.create_up_down_counter("shop.queue.items", unit="{item}")
temperature = meter.create_gauge("shop.temperature", unit="Cel")
duration = meter.create_histogram("shop.request.duration", unit="ms")

# First export.
orders.add(3, {"method": "card"})
orders.add(2, {"method": "cash"})
queue.add(10)
temperature.set(21.5)
for ms in (5, 50, 50):
    duration.record(ms)
assert provider.force_flush(10_000), "first export failed"

# Second export: totals are 7 card, 2 cash; the queue is at 6; 5 durations.
orders.add(4, {"method": "card"})
queue.add(-4)
temperature.set(22.0)
for ms in (500, 5000):
    duration.record(ms)
assert provider.force_flush(10_000), "second export failed"
provider.shutdown()
print("sent")
