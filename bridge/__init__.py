"""Local stand-in for the IoT Core topic rule: MQTT subscribe -> Kinesis PutRecords."""
