"""The reference trading domain: users, broker connections and accounts, orders, positions, and their sagas."""
