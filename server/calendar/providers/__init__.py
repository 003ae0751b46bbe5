"""One small module per calendar provider, each on the provider's own client library.

Providers are synchronous (the libraries are: google-api-python-client on httplib2, msal and
google-auth on requests); `server.calendar.service` runs them in threads. They know nothing of
the database: they turn tokens and cursors into events, and raise the errors of `base`.
"""
