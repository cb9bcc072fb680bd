"""Django admin for staff.

Secrets never reach a page: ApiKey.key_hash and Invitation.token_hash are in no
form, list, read-only field or search; allauth's MFA authenticators are shown
without their data (the TOTP secret). Changes that carry a rule or an audit
trail (revoking a key or an invitation) go through tinko.services; team changes
(roles, removals) are not offered here at all, see MembershipAdmin.

Staff sign in through allauth like everyone else (``secure_admin_login``), so
the admin gets the same rate limits and the same second factor.
"""

from __future__ import annotations

from allauth.account.decorators import secure_admin_login
from allauth.mfa.models import Authenticator
from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.contrib.admin.utils import unquote
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Count
from django.shortcuts import redirect
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from tinko import services
from tinko.models import (
    ApiKey,
    ApiRequestLog,
    AuditEvent,
    IdempotencyRecord,
    Invitation,
    Membership,
    Organization,
    OutboundEmail,
    PeriodicJob,
    Role,
    User,
)

admin.site.site_header = _("Tinko administration")
admin.site.site_title = _("Tinko admin")
admin.site.index_title = _("Staff administration")
# Django's own admin login form checks a password and nothing else: no second
# factor, no rate limit. Send staff to allauth's login instead; a signed-in
# user who is not staff gets 403 rather than another login form.
admin.site.login = secure_admin_login(admin.site.login)


# --- Users ---------------------------------------------------------------------


class UserCreationForm(AdminUserCreationForm):
    class Meta:
        model = User
        fields = ("email",)

    def clean_email(self):
        email = User.objects.normalize_email(self.cleaned_data["email"])
        # The database also refuses case-only duplicates; say so on the field.
        if User.objects.filter(email__iexact=email).exists():
            raise ValidationError(_("A user with this e-mail address already exists."))
        return email


class UserAdminChangeForm(UserChangeForm):
    class Meta:
        model = User
        fields = "__all__"

    def clean_email(self):
        email = User.objects.normalize_email(self.cleaned_data["email"])
        if User.objects.filter(email__iexact=email).exclude(pk=self.instance.pk).exists():
            raise ValidationError(_("A user with this e-mail address already exists."))
        return email


def _organizations_left_without_owner(users) -> list[Organization]:
    """Organizations whose every owner is among ``users``: deleting them all would leave it ownerless."""
    user_ids = [user.pk for user in users]
    other_owners = Membership.objects.filter(role=Role.OWNER).exclude(user_id__in=user_ids)
    return list(
        Organization.objects.filter(memberships__user_id__in=user_ids, memberships__role=Role.OWNER)
        .exclude(pk__in=other_owners.values("organization_id"))
        .distinct()
        .order_by("name")
    )


class MembershipInline(admin.TabularInline):
    """Read-only, like MembershipAdmin: team changes go through the console."""

    model = Membership
    extra = 0
    can_delete = False
    readonly_fields = ("created_at",)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user", "organization")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class UserMembershipInline(MembershipInline):
    fk_name = "user"
    fields = ("organization", "role", "created_at")
    verbose_name_plural = _("Organizations")


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    """Django's user admin for a user who signs in with an e-mail address (no user name)."""

    form = UserAdminChangeForm
    add_form = UserCreationForm
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        (_("Personal info"), {"fields": ("name",)}),
        (_("Permissions"), {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        (_("Important dates"), {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("email", "usable_password", "password1", "password2")}),
    )
    readonly_fields = ("last_login", "date_joined")
    list_display = ("email", "name", "is_staff", "is_superuser", "is_active", "date_joined", "last_login")
    list_filter = ("is_staff", "is_superuser", "is_active", "groups")
    search_fields = ("email", "name")
    ordering = ("email",)
    date_hierarchy = "date_joined"
    inlines = [UserMembershipInline]
    # Replaces Django's bulk delete (same name) with one that spares last owners.
    actions = ["delete_selected"]

    def get_inlines(self, request, obj):
        # No inlines on the add page: memberships need a saved user.
        return self.inlines if obj is not None else []

    # Deleting a user deletes their memberships with them. Refuse it for the
    # last owner of an organization, which would be left with nobody able to
    # run it; the console's rule (services.remove_member) is the same.

    def has_delete_permission(self, request, obj=None):
        if obj is not None and _organizations_left_without_owner([obj]):
            return False
        return super().has_delete_permission(request, obj)

    def _refuse_deleting_last_owners(self, request, users) -> bool:
        orphaned = _organizations_left_without_owner(users)
        if orphaned:
            self.message_user(
                request,
                _(
                    "Not deleted: %(names)s would be left without an owner. "
                    "Make someone else an owner in the console first."
                ) % {"names": ", ".join(org.name for org in orphaned)},
                messages.ERROR,
            )
        return bool(orphaned)

    def get_deleted_objects(self, objs, request):
        deletable, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        # Memberships are read-only on their own page, so Django counts them as
        # "needing a permission"; a user's memberships go with the user, given
        # the plain model permission.
        membership_name = Membership._meta.verbose_name
        if membership_name in perms_needed and request.user.has_perm("tinko.delete_membership"):
            perms_needed.discard(membership_name)
        return deletable, model_count, perms_needed, protected

    def delete_view(self, request, object_id, extra_context=None):
        user = self.get_object(request, unquote(object_id))
        # Staff without the delete permission get Django's 403, not this message.
        if (
            user is not None
            and super().has_delete_permission(request, user)
            and self._refuse_deleting_last_owners(request, [user])
        ):
            return redirect("admin:tinko_user_change", user.pk)
        return super().delete_view(request, object_id, extra_context)

    # Named like Django's action, which it replaces: the confirmation page posts this name back.
    @admin.action(description=_("Delete selected users"), permissions=["delete"])
    def delete_selected(self, request, queryset):
        # Checked again when the confirmation is posted; all or nothing, so
        # nobody deletes half a selection without noticing.
        if self._refuse_deleting_last_owners(request, list(queryset)):
            return None
        return django_delete_selected(self, request, queryset)


# --- Organizations ------------------------------------------------------------------


class OrganizationMembershipInline(MembershipInline):
    fk_name = "organization"
    fields = ("user", "role", "created_at")
    verbose_name_plural = _("Members")


class ApiKeyInline(admin.TabularInline):
    """The organization's keys at a glance; managed on their own page (revoke there)."""

    model = ApiKey
    extra = 0
    fields = ("name", "display_prefix", "created_at", "last_used_at", "revoked_at")
    readonly_fields = fields
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ReadOnlyAdmin(admin.ModelAdmin):
    """Viewable, never added, changed or deleted here (rows written by services only)."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "timezone", "default_currency", "member_count", "created_at")
    list_filter = ("default_currency", "created_at")
    search_fields = ("name", "slug", "display_name", "support_email")
    readonly_fields = ("created_at",)
    date_hierarchy = "created_at"
    fieldsets = (
        (None, {"fields": ("name", "slug", "timezone", "default_currency", "created_at")}),
        (_("Branding"), {"fields": ("display_name", "accent_color", "logo_url", "support_email")}),
    )
    inlines = [OrganizationMembershipInline, ApiKeyInline]
    # Logos must be served over https (Organization.clean); so should a bare host typed here.
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(member_count=Count("memberships", distinct=True))

    @admin.display(description=_("members"), ordering="member_count")
    def member_count(self, obj):
        return obj.member_count

    def has_delete_permission(self, request, obj=None):
        # Deleting a merchant would delete its append-only audit log with it.
        return False


@admin.register(Membership)
class MembershipAdmin(ReadOnlyAdmin):
    """Read-only: team changes go through the console, where the rules and the audit live.

    tinko.services.change_role and remove_member keep at least one owner per
    organization and write an AuditEvent; an admin form would do neither.
    """

    list_display = ("user", "organization", "role", "created_at")
    list_filter = ("role", "created_at")
    search_fields = ("user__email", "user__name", "organization__name", "organization__slug")
    list_select_related = ("user", "organization")
    fields = ("user", "organization", "role", "created_at")
    readonly_fields = fields
    date_hierarchy = "created_at"


# --- Invitations -----------------------------------------------------------------------


class InvitationStatusFilter(admin.SimpleListFilter):
    title = _("status")
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("pending", _("Pending")), ("accepted", _("Accepted")), ("revoked", _("Revoked")), ("expired", _("Expired"))]

    def queryset(self, request, queryset):
        now = timezone.now()
        match self.value():
            case "pending":
                return queryset.pending()
            case "accepted":
                return queryset.filter(accepted_at__isnull=False)
            case "revoked":
                return queryset.filter(accepted_at__isnull=True, revoked_at__isnull=False)
            case "expired":
                return queryset.filter(accepted_at__isnull=True, revoked_at__isnull=True, expires_at__lte=now)
        return queryset


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    """Read-only: invitations are created by the invite flow (which e-mails the token) and revoked by an action."""

    list_display = ("email", "organization", "role", "status", "invited_by", "created_at", "expires_at")
    list_filter = (InvitationStatusFilter, "role", "created_at")
    search_fields = ("email", "organization__name", "organization__slug", "invited_by__email")
    list_select_related = ("organization", "invited_by")
    date_hierarchy = "created_at"
    fields = (
        "organization", "email", "role", "status", "invited_by", "created_at", "expires_at",
        "accepted_at", "accepted_by", "revoked_at",
    )
    readonly_fields = fields
    actions = ["revoke_invitations"]

    @admin.display(description=_("status"))
    def status(self, obj):
        return obj.status

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_revoke_permission(self, request):
        return request.user.has_perm("tinko.change_invitation")

    @admin.action(description=_("Revoke selected pending invitations"), permissions=["revoke"])
    def revoke_invitations(self, request, queryset):
        revoked = 0
        for invitation in queryset.pending():
            services.revoke_invitation(invitation=invitation, actor=request.user, request=request)
            revoked += 1
        self.message_user(
            request,
            ngettext("Revoked %d invitation.", "Revoked %d invitations.", revoked) % revoked,
            messages.SUCCESS,
        )


# --- API keys ----------------------------------------------------------------------------


class ApiKeyStatusFilter(admin.SimpleListFilter):
    title = _("status")
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("active", _("Active")), ("revoked", _("Revoked"))]

    def queryset(self, request, queryset):
        if self.value() == "active":
            return queryset.filter(revoked_at__isnull=True)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(ApiKey)
class ApiKeyAdmin(ReadOnlyAdmin):
    """Read-only, with a revoke action.

    Staff cannot create keys here: the plaintext is shown once, and the admin
    has nowhere to show it. Keys are revoked, never deleted, so the audit log
    keeps pointing at them.
    """

    list_display = ("name", "display_prefix", "organization", "is_active", "created_by", "created_at", "last_used_at")
    list_filter = (ApiKeyStatusFilter, "created_at", "last_used_at")
    search_fields = ("name", "prefix", "organization__name", "organization__slug")
    list_select_related = ("organization", "created_by")
    date_hierarchy = "created_at"
    fields = ("organization", "name", "display_prefix", "created_by", "created_at", "last_used_at", "revoked_at")
    readonly_fields = fields
    actions = ["revoke_keys"]

    @admin.display(description=_("prefix"))
    def display_prefix(self, obj):
        return obj.display_prefix

    @admin.display(description=_("active"), boolean=True)
    def is_active(self, obj):
        return obj.is_active


    def has_revoke_permission(self, request):
        return request.user.has_perm("tinko.change_apikey")

    @admin.action(description=_("Revoke selected API keys"), permissions=["revoke"])
    def revoke_keys(self, request, queryset):
        revoked = 0
        for key in queryset.filter(revoked_at__isnull=True):
            services.revoke_api_key(api_key=key, actor=request.user, request=request)
            revoked += 1
        self.message_user(
            request, ngettext("Revoked %d API key.", "Revoked %d API keys.", revoked) % revoked, messages.SUCCESS
        )


# --- Audit log --------------------------------------------------------------------------------


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    """Append-only: nobody adds, changes or deletes audit events, staff included."""

    list_display = ("created_at", "organization", "actor_label", "action", "target_label", "ip_address")
    list_filter = ("action", "created_at")
    search_fields = ("action", "actor_label", "target_label", "target_id", "request_id", "organization__name", "organization__slug")
    list_select_related = ("organization",)
    date_hierarchy = "created_at"
    # Counting a large log on every page load is slow and rarely useful.
    show_full_result_count = False
    fields = (
        "created_at", "organization", "actor_label", "actor_user", "actor_api_key", "action",
        "target_type", "target_id", "target_label", "data", "ip_address", "request_id",
    )
    readonly_fields = fields


@admin.register(ApiRequestLog)
class ApiRequestLogAdmin(ReadOnlyAdmin):
    """The API request log (Console → Developers → Logs), for support: read-only, bodies already masked."""

    list_display = ("created_at", "organization", "method", "path", "status", "duration_ms", "key_name", "request_id")
    list_filter = ("status", "method", "created_at")
    search_fields = ("request_id", "idempotency_key", "path", "organization__slug")
    list_select_related = ("organization",)
    date_hierarchy = "created_at"
    show_full_result_count = False
    fields = (
        "created_at", "organization", "api_key", "key_name", "method", "path", "status", "duration_ms",
        "request_id", "idempotency_key", "request_body", "response_body",
    )
    readonly_fields = fields


# --- Outgoing e-mail --------------------------------------------------------------------------


@admin.register(OutboundEmail)
class OutboundEmailAdmin(ReadOnlyAdmin):
    """Delivery status of e-mail to users, for support ("did my invitation go out?").

    Read-only and without the bodies: they carry live tokens (sign-in links,
    invitations), encrypted until sent. Rows are never deleted here: a queued
    one is the only copy of a mail the worker has yet to send.
    """

    list_display = ("subject", "recipients", "status", "attempts", "created_at", "sent_at")
    list_filter = ("status", "created_at")
    search_fields = ("subject", "to")
    date_hierarchy = "created_at"
    show_full_result_count = False
    fields = ("to", "subject", "status", "attempts", "last_error", "created_at", "last_attempt_at", "sent_at")
    readonly_fields = fields

    @admin.display(description=_("to"))
    def recipients(self, obj):
        return ", ".join(obj.to)


# --- allauth's MFA authenticators ----------------------------------------------------------------


admin.site.unregister(Authenticator)


@admin.register(Authenticator)
class AuthenticatorAdmin(admin.ModelAdmin):
    """allauth's own admin shows ``data``, which holds the TOTP secret: list and delete only.

    Deleting an authenticator is how staff help a user who lost their device.
    """

    list_display = ("user", "type", "created_at", "last_used_at")
    list_filter = ("type", "created_at", "last_used_at")
    search_fields = ("user__email",)
    list_select_related = ("user",)
    fields = ("user", "type", "created_at", "last_used_at")
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


# --- Scheduler ---------------------------------------------------------------------------


@admin.register(PeriodicJob)
class PeriodicJobAdmin(admin.ModelAdmin):
    """When each periodic job next runs. Staff may bring a run forward; the scheduler does the rest."""

    list_display = ("name", "next_run_at", "last_run_at")
    search_fields = ("name",)
    ordering = ("name",)
    fields = ("name", "next_run_at", "last_run_at")
    readonly_fields = ("name", "last_run_at")
    actions = ["run_at_next_tick"]

    def has_add_permission(self, request):
        # Rows are created by the scheduler for the jobs the code registers.
        return False

    @admin.action(description=_("Run at the next scheduler tick"), permissions=["change"])
    def run_at_next_tick(self, request, queryset):
        count = queryset.update(next_run_at=timezone.now())
        self.message_user(request, ngettext("%d job will run at the next tick.", "%d jobs will run at the next tick.", count) % count)


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(ReadOnlyAdmin):
    """Stored first responses to API requests sent with an Idempotency-Key (kept a day)."""

    list_display = ("key", "organization", "status_code", "created_at")
    list_filter = ("status_code",)
    search_fields = ("key", "organization__slug")
    list_select_related = ("organization",)
    fields = ("organization", "key", "request_hash", "status_code", "response", "created_at")
    readonly_fields = fields
