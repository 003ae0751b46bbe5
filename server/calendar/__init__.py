"""Calendar sync with Google Calendar and Outlook (SPEC section 5): connect, sync jobs, webhooks."""
