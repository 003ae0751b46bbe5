"""Calendar sync with Google Calendar and Outlook (docs/calendar.md): connect, sync jobs, webhooks."""
