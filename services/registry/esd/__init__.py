"""Effort Sharing Decision 406/2009/EC, Article 5: a registry as an EU Member State."""
