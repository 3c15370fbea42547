SELECT *, topic(3) AS thing, timestamp() AS received_ms FROM 'energy/consumption/+'
