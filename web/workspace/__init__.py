"""The broker workspace as HTML pages: matches, queue, failure library, notifications, open calls, stats."""
