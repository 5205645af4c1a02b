"""RabbitMQ through pika: queue declaration, batched publishing, dead letters, queue migration."""
