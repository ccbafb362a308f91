"""The lean baseline of `bench.writes`: the two writes of the contract as a lean
FastAPI + SQLModel build does them, on our tables.

    DATABASE_URL=... SECRET_KEY=... uvicorn bench.peer:app --workers 4

`POST /api/v1/conversations/{id}/messages/` and `POST /api/v1/tasks/`, with the
same bearer tokens (HS256, `user_id` claim), the same answers (201 and the stored
object) and the same rules for what they store: the caller's conversation only, a
`seq` one past the last under the conversation's row lock, `message_count` and
`updated_at` kept exact, a retried `client_id` answered with the stored message.
Written the way the SQLModel tutorial writes a create: read the user, lock and
read, add, commit, refresh. Nothing else of the contract is here: it exists to be
measured against (bench/README.md, "Writes").
"""

import os
import uuid
from datetime import UTC, datetime
from typing import Annotated

import jwt
from fastapi import Depends, FastAPI, Header, HTTPException
from sqlalchemy import Column, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, Session, SQLModel, create_engine, select

SECRET_KEY = os.environ.get("JWT_SIGNING_KEY") or os.environ["SECRET_KEY"]
engine = create_engine(
    os.environ["DATABASE_URL"].replace("postgres://", "postgresql+psycopg://", 1),
    pool_size=8,
    pool_pre_ping=False,
)
app = FastAPI()


class User(SQLModel, table=True):
    __tablename__ = "auth_user"
    id: int = Field(primary_key=True)
    username: str
    is_active: bool


class Conversation(SQLModel, table=True):
    __tablename__ = "chat_conversation"
    id: int = Field(primary_key=True)
    owner_id: int
    title: str
    created_at: datetime
    updated_at: datetime
    message_count: int
    archived: bool
    pinned: bool


class Message(SQLModel, table=True):
    __tablename__ = "chat_message"
    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int
    owner_id: int
    seq: int
    role: str
    content: str
    tool_calls: list | None = Field(default=None, sa_column=Column(JSONB, nullable=True))
    client_id: uuid.UUID | None = None
    created_at: datetime
    superseded_at: datetime | None = None


class Task(SQLModel, table=True):
    __tablename__ = "tasks_task"
    id: int | None = Field(default=None, primary_key=True)
    owner_id: int
    title: str
    description: str = ""
    completed: bool = False
    created_at: datetime
    updated_at: datetime
    due_at: datetime | None = None
    priority: str = "normal"
    tags: list = Field(default_factory=list, sa_column=Column(JSONB, nullable=False))
    repeat: str | None = None
    follows: int | None = None


class MessageIn(SQLModel):
    role: str = Field(regex="^(user|assistant|system|tool)$")
    content: str = Field(min_length=1, max_length=10_000)
    tool_calls: list | None = None
    client_id: uuid.UUID | None = None


class TaskIn(SQLModel):
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    completed: bool = False


def session():
    with Session(engine) as db:
        yield db


DB = Annotated[Session, Depends(session)]


def current_user(authorization: Annotated[str, Header()], db: DB) -> User:
    scheme, _, token = authorization.partition(" ")
    try:
        claims = jwt.decode(token, SECRET_KEY, algorithms=["HS256"])
    except jwt.PyJWTError:
        raise HTTPException(401, "Given token not valid for any token type") from None
    user = db.get(User, int(claims["user_id"]))
    if scheme != "Bearer" or user is None or not user.is_active:
        raise HTTPException(401, "User not found")
    return user


CurrentUser = Annotated[User, Depends(current_user)]


@app.post("/api/v1/conversations/{conversation_id}/messages/", status_code=201)
def append_message(
    conversation_id: int,
    body: MessageIn,
    user: CurrentUser,
    db: DB,
) -> Message:
    conversation = db.exec(
        select(Conversation)
        .where(Conversation.id == conversation_id, Conversation.owner_id == user.id)
        .with_for_update()
    ).first()
    if conversation is None:
        raise HTTPException(404, "Not found.")
    if body.client_id is not None:
        stored = db.exec(
            select(Message).where(
                Message.conversation_id == conversation_id, Message.client_id == body.client_id
            )
        ).first()
        if stored is not None:
            return stored
    last = db.exec(
        select(func.coalesce(func.max(Message.seq), 0)).where(
            Message.conversation_id == conversation_id
        )
    ).one()
    now = datetime.now(UTC)
    message = Message(
        conversation_id=conversation_id,
        owner_id=user.id,
        seq=last + 1,
        created_at=now,
        **body.model_dump(),
    )
    conversation.message_count += 1
    conversation.updated_at = now
    db.add(message)
    db.add(conversation)
    db.commit()
    db.refresh(message)
    return message


@app.post("/api/v1/tasks/", status_code=201)
def create_task(body: TaskIn, user: CurrentUser, db: DB) -> Task:
    now = datetime.now(UTC)
    task = Task(owner_id=user.id, created_at=now, updated_at=now, **body.model_dump())
    db.add(task)
    db.commit()
    db.refresh(task)
    return task
