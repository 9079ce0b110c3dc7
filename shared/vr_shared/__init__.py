"""Contracts and plumbing shared by the Value Realization services.

Event models, topic names, settings base, Kafka and database helpers, metrics, logging and the
gateway identity token. Business rules live in the services, never here.
"""
