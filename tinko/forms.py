"""How every form in Tinko renders: labels above controls, no label colons, help and errors under the control.

FORM_RENDERER points here, so ``{{ form }}`` and ``{{ form.field.as_field_group }}`` in any template give
the same markup (templates/forms/), which static/tinko/tinko.css styles.
"""

from django.forms.renderers import TemplatesSetting


class FormRenderer(TemplatesSetting):
    form_template_name = "forms/form.html"
    field_template_name = "forms/field.html"
