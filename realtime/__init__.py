"""Real-time orders: an event stream whose figures reach the API within seconds.

CONTRACT.md section 6. Locally a durable log under ``$DUFF_LAKE/stream/`` and an embedded
SQLite store; in AWS a Kinesis stream, the Lambda ``realtime.handler.handler`` and DynamoDB.
"""
