"""The long-running Kinesis consumer: KCL record processor, flush/checkpoint protocol, CLI."""
