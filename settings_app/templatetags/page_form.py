"""``{% crispy_page_form form %}``: ``{% crispy form %}``, rendered once per state of the form.

crispy-forms renders every field through several templates: for the settings form that is
most of a page view (about 17 ms of 29). The markup of an unbound form is a function of its
fields (value, label, help text, widget, choices, disabled), the language and the two page
values its HTML blocks read (``can_change``, ``credential_status``), so the markup is kept per
process under a digest of exactly those, and the page after a Save, whose form has the same
state, is served from it too. A bound form (a post with errors) is always rendered afresh, as
is every form with DEBUG on (templates may change under a running server). Values of inputs
that never show them (passwords) do not enter the digest. Markup holding a CSRF token is never
kept: a token belongs to one response (the layout sets ``disable_csrf``; the page's form has
its own token).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

from crispy_forms.templatetags.crispy_forms_tags import CrispyFormNode
from django import forms, template
from django.conf import settings
from django.utils import translation
from django.utils.safestring import SafeString

register = template.Library()

# The page values the form's HTML blocks (settings_app/_certificate_status.html, _federated_status.html) read.
PAGE_VALUES = ("can_change", "credential_status")
KEPT = 16


class _Markups:
    """The most recently used markups by digest; shared by a process's threads."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[str, SafeString] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> SafeString | None:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
            return self._items.get(key)

    def put(self, key: str, markup: SafeString) -> None:
        with self._lock:
            self._items[key] = markup
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


MARKUPS = _Markups(KEPT)


def _field_state(field: forms.BoundField) -> str:
    widget = field.field.widget
    shows_value = not (isinstance(widget, forms.PasswordInput) and not widget.render_value)
    choices = getattr(field.field, "choices", None)
    return repr(
        (
            field.html_name,
            field.auto_id,
            str(field.label),
            str(field.help_text),
            field.field.disabled,
            field.field.required,
            type(widget).__qualname__,
            sorted((name, str(value)) for name, value in widget.attrs.items()),
            [(str(value), str(label)) for value, label in choices] if choices is not None else None,
            field.value() if shows_value else None,
        )
    )


# The fields each form class's layout shows; a layout is the same for every instance and language.
_LAYOUT_FIELDS: dict[type, tuple[str, ...]] = {}


def _layout_fields(form: forms.Form) -> tuple[str, ...]:
    names = _LAYOUT_FIELDS.get(type(form))
    if names is None:
        names = _LAYOUT_FIELDS[type(form)] = tuple(pointer.name for pointer in form.helper.layout.get_field_names())
    return names


def markup_key(form: forms.Form, context: template.Context) -> str:
    """The digest of everything the crispy markup of the unbound ``form`` depends on."""
    parts = [type(form).__qualname__, translation.get_language() or "", str(form.prefix)]
    parts += [repr(context.get(name)) for name in PAGE_VALUES]
    parts += [_field_state(form[name]) for name in _layout_fields(form)]
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def _render(context: template.Context, form: forms.Form) -> SafeString:
    with context.push(form=form):
        return CrispyFormNode("form", None).render(context)


@register.simple_tag(takes_context=True)
def crispy_page_form(context: template.Context, form: forms.Form) -> SafeString:
    if form.is_bound or settings.DEBUG:
        return _render(context, form)
    key = markup_key(form, context)
    markup = MARKUPS.get(key)
    if markup is None:
        markup = _render(context, form)
        # A CSRF token belongs to one response: markup holding one (a layout without
        # disable_csrf) is never kept, or another session would post a foreign token.
        if "csrfmiddlewaretoken" not in markup:
            MARKUPS.put(key, markup)
    return markup
