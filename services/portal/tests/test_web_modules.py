"""Module management pages: the list identity gives (with only the actions it allows), creating, renaming,
withdrawing and restoring, each a POST with the CSRF token that identity (a fake here, over real gRPC) decides. A
refusal is a plain page; the portal never decides."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest
from tend.identity.v1 import identity_pb2, identity_pb2_grpc

from services.portal.tests.conftest import (
    IDENTITY_SERVICE,
    STAFF,
    STAFF_NAME,
    FakeIdentity,
    FakePerson,
    PortalBrowser,
    abort,
    assertion_for,
    serving,
)
from tend_common.grpc_server import GrpcServer

ADMIN = FakePerson(
    person_id=str(uuid.uuid4()),
    username="schooladmin1",
    kind=identity_pb2.PERSON_KIND_STAFF,
    display_name="Sam Canary-a11",
    roles=("school_administrator",),
)
COMP = identity_pb2.School(school_id=str(uuid.uuid4()), code="COMP", name="School of Computing")
CS101, CS102 = str(uuid.uuid4()), str(uuid.uuid4())


@dataclass
class StoredModule:
    module_id: str
    code: str
    title: str
    deleted: bool = False


class ManagingIdentity(FakeIdentity):
    """Identity's module management for two people: ADMIN administers COMP (every module); STAFF leads CS101."""

    def __init__(self) -> None:
        super().__init__()
        self.people[ADMIN.username] = ADMIN
        self.modules = {
            CS101: StoredModule(CS101, "CS101", "Programming"),
            CS102: StoredModule(CS102, "CS102", "Computer Systems"),
        }
        self.changes: list[tuple[str, str]] = []
        self.lists: list[str] = []

    def _actions(self, assertion: str, module: StoredModule) -> list[str]:
        if assertion == assertion_for(ADMIN, "identity"):
            return ["module.update", "module.restore" if module.deleted else "module.delete"]
        if assertion == assertion_for(STAFF, "identity") and module.module_id == CS101 and not module.deleted:
            return ["module.update"]
        return []

    def _message(self, module: StoredModule) -> identity_pb2.Module:
        return identity_pb2.Module(
            module_id=module.module_id,
            school_id=COMP.school_id,
            code=module.code,
            title=module.title,
            deleted=module.deleted,
        )

    def ListModules(
        self, request: identity_pb2.ListModulesRequest, context: grpc.ServicerContext
    ) -> identity_pb2.ListModulesResponse:
        self.lists.append(request.actor_assertion)
        managed = [
            identity_pb2.ManagedModule(
                module=self._message(module),
                school=COMP,
                runs=[identity_pb2.ModuleRun(module_run_id=str(uuid.uuid4()), term="2026/27 autumn")],
                allowed_actions=actions,
            )
            for module in sorted(self.modules.values(), key=lambda m: m.code)
            if (actions := self._actions(request.actor_assertion, module))
        ]
        admin = request.actor_assertion == assertion_for(ADMIN, "identity")
        return identity_pb2.ListModulesResponse(modules=managed, schools_for_new_modules=[COMP] if admin else [])

    def _decide(self, context: grpc.ServicerContext, assertion: str, module_id: str, action: str) -> StoredModule:
        module = self.modules.get(module_id)
        if module is None:
            abort(context, grpc.StatusCode.NOT_FOUND, "There is no such module.")
        self.changes.append((action, module_id))
        if action not in self._actions(assertion, module):
            abort(context, grpc.StatusCode.PERMISSION_DENIED, f"refused {STAFF_NAME}")
        return module

    def CreateModule(
        self, request: identity_pb2.CreateModuleRequest, context: grpc.ServicerContext
    ) -> identity_pb2.ModuleResponse:
        self.changes.append(("module.create", request.code))
        if request.actor_assertion != assertion_for(ADMIN, "identity"):
            abort(context, grpc.StatusCode.PERMISSION_DENIED, f"refused {STAFF_NAME}")
        if request.school_id != COMP.school_id:
            abort(context, grpc.StatusCode.NOT_FOUND, "There is no such school.")
        if any(m.code == request.code for m in self.modules.values()):
            abort(context, grpc.StatusCode.ALREADY_EXISTS, "Another module already has this code.")
        module = StoredModule(str(uuid.uuid4()), request.code, request.title)
        self.modules[module.module_id] = module
        return identity_pb2.ModuleResponse(module=self._message(module))

    def UpdateModule(
        self, request: identity_pb2.UpdateModuleRequest, context: grpc.ServicerContext
    ) -> identity_pb2.ModuleResponse:
        module = self._decide(context, request.actor_assertion, request.module_id, "module.update")
        module.title = request.title
        return identity_pb2.ModuleResponse(module=self._message(module))

    def DeleteModule(
        self, request: identity_pb2.ModuleActionRequest, context: grpc.ServicerContext
    ) -> identity_pb2.ModuleResponse:
        module = self._decide(context, request.actor_assertion, request.module_id, "module.delete")
        module.deleted = True
        return identity_pb2.ModuleResponse(module=self._message(module))

    def RestoreModule(
        self, request: identity_pb2.ModuleActionRequest, context: grpc.ServicerContext
    ) -> identity_pb2.ModuleResponse:
        module = self._decide(context, request.actor_assertion, request.module_id, "module.restore")
        module.deleted = False
        return identity_pb2.ModuleResponse(module=self._message(module))


@pytest.fixture
def fake_identity() -> Iterator[tuple[FakeIdentity, GrpcServer]]:
    yield from serving(ManagingIdentity(), identity_pb2_grpc.add_IdentityServiceServicer_to_server, IDENTITY_SERVICE)


@pytest.fixture
def managing(identity: FakeIdentity) -> ManagingIdentity:
    assert isinstance(identity, ManagingIdentity)
    return identity


@pytest.fixture
def admin(browser: PortalBrowser) -> PortalBrowser:
    assert browser.sign_in(ADMIN).status_code == 303
    return browser


def test_an_administrator_sees_the_modules_with_the_actions_identity_allows(
    admin: PortalBrowser, managing: ManagingIdentity
) -> None:
    managing.modules[CS102].deleted = True

    response = admin.get("/modules")

    page = response.get_data(as_text=True)
    assert response.status_code == 200, page
    assert managing.lists == [assertion_for(ADMIN, "identity")]
    assert "School of Computing" in page
    assert "2026/27 autumn" in page
    assert "<strong>Withdrawn</strong>" in page  # in words, not colour alone
    assert f'action="/modules/{CS101}/delete"' in page
    assert f'action="/modules/{CS102}/delete"' not in page
    assert f'action="/modules/{CS102}/restore"' in page
    assert f'<label for="title-{CS101}">' in page
    assert '<label for="code">' in page
    assert page.count('name="csrf_token"') == page.count("<form")
    assert managing.changes == []  # a GET changes nothing


def test_a_module_lead_may_only_rename_their_module(signed_in_staff: PortalBrowser, managing: ManagingIdentity) -> None:
    page = signed_in_staff.get("/modules").get_data(as_text=True)
    assert f'action="/modules/{CS101}/title"' in page
    assert "/delete" not in page
    assert "CS102" not in page
    assert "Create a module" not in page

    renamed = signed_in_staff.post(f"/modules/{CS101}/title", {"title": "Programming I"})

    assert renamed.status_code == 303
    assert managing.modules[CS101].title == "Programming I"
    assert "CS101 is now called Programming I." in signed_in_staff.get("/modules").get_data(as_text=True)


def test_a_refused_change_is_a_plain_refusal_page(signed_in_staff: PortalBrowser, managing: ManagingIdentity) -> None:
    response = signed_in_staff.post(f"/modules/{CS101}/delete", {})

    page = response.get_data(as_text=True)
    assert response.status_code == 403
    assert "You can&#39;t change this module" in page
    assert "Nothing was changed." in page
    assert "Canary" not in page
    assert managing.changes == [("module.delete", CS101)]  # identity decided, not the portal
    assert not managing.modules[CS101].deleted


def test_an_administrator_withdraws_and_restores(admin: PortalBrowser, managing: ManagingIdentity) -> None:
    withdrawn = admin.post(f"/modules/{CS102}/delete", {})
    assert withdrawn.status_code == 303
    assert managing.modules[CS102].deleted
    page = admin.get("/modules").get_data(as_text=True)
    assert "CS102 Computer Systems was withdrawn." in page
    assert f'action="/modules/{CS102}/restore"' in page

    assert admin.post(f"/modules/{CS102}/restore", {}).status_code == 303
    assert not managing.modules[CS102].deleted
    assert "CS102 Computer Systems was restored." in admin.get("/modules").get_data(as_text=True)


def test_an_administrator_creates_a_module(admin: PortalBrowser, managing: ManagingIdentity) -> None:
    created = admin.post("/modules", {"school_id": COMP.school_id, "code": "cs999", "title": "  Quantum Computing "})

    assert created.status_code == 303
    assert {(m.code, m.title) for m in managing.modules.values()} >= {("CS999", "Quantum Computing")}
    assert "CS999 Quantum Computing was created." in admin.get("/modules").get_data(as_text=True)


def test_a_taken_code_or_bad_details_are_named_on_the_form(admin: PortalBrowser, managing: ManagingIdentity) -> None:
    taken = admin.post("/modules", {"school_id": COMP.school_id, "code": "CS101", "title": "Again"})
    assert taken.status_code == 400
    assert "Another module already has this code." in taken.get_data(as_text=True)

    bad = admin.post("/modules", {"school_id": "nowhere", "code": "C", "title": ""})
    page = bad.get_data(as_text=True)
    assert bad.status_code == 400
    assert "Choose the school the module belongs to." in page
    assert "Enter a code of 2 to 20 capital letters" in page
    assert "Enter the module&#39;s title." in page
    assert managing.changes == [("module.create", "CS101")]  # the bad form never reached identity

    long_title = admin.post(f"/modules/{CS101}/title", {"title": "x" * 201})
    assert long_title.status_code == 400
    assert f'href="#title-{CS101}"' in long_title.get_data(as_text=True)


def test_every_change_needs_the_csrf_token(admin: PortalBrowser, managing: ManagingIdentity) -> None:
    for path, data in [
        ("/modules", {"school_id": COMP.school_id, "code": "CS998", "title": "New"}),
        (f"/modules/{CS101}/title", {"title": "Renamed"}),
        (f"/modules/{CS101}/delete", {}),
        (f"/modules/{CS101}/restore", {}),
    ]:
        assert admin.post(path, data, with_csrf=False).status_code == 400, path
    assert managing.changes == []


def test_an_unknown_module_is_not_found(admin: PortalBrowser, managing: ManagingIdentity) -> None:
    assert admin.post("/modules/not-a-module/delete", {}).status_code == 404
    assert admin.post(f"/modules/{uuid.uuid4()}/delete", {}).status_code == 404


def test_students_have_no_module_pages(signed_in_student: PortalBrowser, managing: ManagingIdentity) -> None:
    assert signed_in_student.get("/modules").status_code == 403
    assert signed_in_student.post(f"/modules/{CS101}/delete", {}).status_code == 403
    assert 'href="/modules"' not in signed_in_student.get("/").get_data(as_text=True)
    assert managing.lists == []
    assert managing.changes == []


def test_the_modules_link_is_shown_to_administrators_and_lecturers(
    admin: PortalBrowser, managing: ManagingIdentity
) -> None:
    assert 'href="/modules"' in admin.get("/").get_data(as_text=True)
