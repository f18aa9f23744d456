"""Conversations as trees: the branch shown, the versions of a message, switching between them.

Every message has a parent (null for the first). Editing a question or regenerating a
reply adds a sibling, so nothing is ever lost; the conversation remembers the leaf of
the branch being shown (`current_message`), and that branch is what the model sees.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from chat.errors import BadRequest
from chat.models import Conversation, Message

# How a new user message is placed: after the current leaf, or as a new version of the
# last question (`replace_last`); an explicit parent is a message id, or None for the start.
CURRENT_LEAF = "current_leaf"
LAST_QUESTION = "last_question"


@dataclass
class Tree:
    """All the messages of one conversation, indexed by id and by parent."""

    by_id: dict[int, Message]
    children: dict[int | None, list[Message]]

    @classmethod
    def of(cls, conversation: Conversation) -> Tree:
        """The conversation's messages, read in one query."""
        return cls.from_messages(conversation.messages.order_by("id"))

    @classmethod
    def from_messages(cls, messages) -> Tree:
        by_id, children = {}, defaultdict(list)
        for message in messages:
            by_id[message.id] = message
            children[message.parent_id].append(message)
        for versions in children.values():
            versions.sort(key=lambda m: m.id)
        return cls(by_id, children)

    def siblings(self, message: Message) -> list[int]:
        """The ids of `message`'s versions (same parent), oldest first, itself included."""
        return [m.id for m in self.children[message.parent_id]]

    def newest_leaf(self, message: Message) -> Message:
        """The end of the branch through `message`, down its newest replies."""
        seen = set()
        while self.children.get(message.id) and message.id not in seen:
            seen.add(message.id)
            message = self.children[message.id][-1]
        return message

    def path_to(self, message: Message | None) -> list[Message]:
        """The messages from the root down to `message`, oldest first."""
        path, seen = [], set()
        while message is not None and message.id not in seen:
            seen.add(message.id)
            path.append(message)
            message = self.by_id.get(message.parent_id)
        return path[::-1]

    def current_leaf(self, conversation: Conversation) -> Message | None:
        """The leaf of the branch shown; without one recorded, the newest message's branch."""
        leaf = self.by_id.get(conversation.current_message_id)
        if leaf is None and self.by_id:
            leaf = self.by_id[max(self.by_id)]
        return leaf

    def current_branch(self, conversation: Conversation) -> list[Message]:
        return self.path_to(self.current_leaf(conversation))


def current_branch(conversation: Conversation) -> list[tuple[Message, list[int]]]:
    """The branch shown, root to leaf, each message with its siblings' ids."""
    tree = Tree.of(conversation)
    return [(m, tree.siblings(m)) for m in tree.current_branch(conversation)]


def version_marks(conversation: Conversation) -> dict[int, str]:
    """For each message, which version of its turn it is and whether it is on the branch shown."""
    tree = Tree.of(conversation)
    shown = {m.id for m in tree.current_branch(conversation)}
    marks = {}
    for message in tree.by_id.values():
        versions = tree.siblings(message)
        mark = f"version {versions.index(message.id) + 1} of {len(versions)}"
        marks[message.id] = mark + (", shown" if message.id in shown else ", other branch")
    return marks


def parent_for(tree: Tree, conversation: Conversation, where) -> Message | None:
    """The message a new user message follows; `where` is an anchor or a message id."""
    if where == CURRENT_LEAF:
        return tree.current_leaf(conversation)
    if where == LAST_QUESTION:
        branch = tree.current_branch(conversation)
        questions = [m for m in branch if m.role == Message.Role.USER]
        if not questions:
            return branch[-1] if branch else None
        return tree.by_id.get(questions[-1].parent_id)
    if where is None:
        return None
    parent = tree.by_id.get(where)
    if parent is None:
        raise BadRequest("'parent_id' is not a message of this conversation.", "invalid_parent")
    if parent.role == Message.Role.USER:
        raise BadRequest("A question follows a reply: 'parent_id' is a question.", "invalid_parent")
    return parent


def check_parent_id(body: dict):
    """The placement a request body asks for: `parent_id`, `replace_last`, or the leaf."""
    if "parent_id" in body:
        if body.get("replace_last") is True:
            raise BadRequest("Send 'parent_id' or 'replace_last', not both.", "invalid_parent")
        value = body["parent_id"]
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise BadRequest("'parent_id' must be a message id or null.", "invalid_parent")
        return value
    return LAST_QUESTION if body.get("replace_last") is True else CURRENT_LEAF


def switch_to(conversation: Conversation, message_id) -> None:
    """Make the branch through `message_id` current, down to its newest descendants."""
    if isinstance(message_id, bool) or not isinstance(message_id, int):
        raise BadRequest("'current_message_id' must be a message id.", "invalid_message")
    tree = Tree.of(conversation)
    message = tree.by_id.get(message_id)
    if message is None:
        raise BadRequest(
            "'current_message_id' is not a message of this conversation.", "invalid_message"
        )
    conversation.current_message = tree.newest_leaf(message)
