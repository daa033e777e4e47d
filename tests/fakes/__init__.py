"""Loopback fakes of Microsoft Entra ID and Exchange Online SMTP for tests."""
