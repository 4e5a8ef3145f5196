"""ModelFactory: fine-tune language models on permissioned community datasets."""

from modelfactory.celery import app as celery_app

__all__ = ("celery_app",)
