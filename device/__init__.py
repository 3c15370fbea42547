"""The software of the IoT box: meter sources, durable spool, edge batching, MQTT publisher."""
