"""Full-text search of conversation titles and message content: one meaning, two engines.

The meaning (shared/API.md, "History"): every word of the search must match a word
of the text at its beginning (`mil` finds "milk"), ignoring case and accents;
characters such as `&|!:*()` and quotes are plain text, never query syntax.

PostgreSQL (chat/migrations/0006_search.py): messages carry a stored generated
column `search_vector = to_tsvector('simple', chat_unaccent(content))` under a GIN
index on (owner_id, search_vector) (btree_gin): a whole word's entries are
intersected with the owner's, but a prefix (`'mil':*`) gathers every user's
entries for the words it begins before the intersection, which for a common word
is most of the cost (`InMatchingMessage` says how conversation search avoids it;
message search walks the owner's newest messages for such words). The search text
becomes a tsquery in the database by `chat_search_query(text)`: PostgreSQL's own
parser splits it into lexemes (as it split the content), each is quoted (so no
character of the user's is an operator) and made a prefix (`'mil':*`), and they
are joined by `&`. The function is IMMUTABLE, so the planner evaluates it once, at
plan time, and estimates with the resulting constant. A text with no word at all
yields NULL: nothing matches.

SQLite (development and the first test pass): no index; `chat_search_match(text,
search)`, a Python function registered on every connection, folds both sides the
same way (accents stripped, case folded, split into words at anything that is not
a letter or digit) and checks that every search word begins a word of the text.
The two agree on ordinary words; PostgreSQL's parser keeps some tokens whole
(`3.5`, `ada@example.com`, `e-mail` besides `e` and `mail`) that SQLite splits.
"""

import re
import unicodedata

from django.db.models import BooleanField, Expression, F

from core.errors import DomainError

MAX_SEARCH_LENGTH = 256
WORD = re.compile(r"[^\W_]+")
# Letters that carry no combining accent in Unicode but that `unaccent` still maps.
_LETTERS = str.maketrans(
    {
        "ø": "o",
        "Ø": "O",
        "đ": "d",
        "Đ": "D",
        "ł": "l",
        "Ł": "L",
        "ı": "i",
        "æ": "ae",
        "Æ": "AE",
        "œ": "oe",
        "Œ": "OE",
        "þ": "th",
        "Þ": "TH",
    }
)


class InvalidSearch(DomainError):
    default_detail = "The search text is not valid."


def clean_search(text):
    """The search text as given, if it can be searched; else `InvalidSearch` (400)."""
    if not isinstance(text, str):
        raise InvalidSearch("search must be a string.")
    if "\x00" in text:
        raise InvalidSearch("search must not contain NUL characters.")
    if len(text) > MAX_SEARCH_LENGTH:
        raise InvalidSearch(f"search must be at most {MAX_SEARCH_LENGTH} characters.")
    return text


def fold(text):
    """`text` without accents, case-folded: what SQLite's matching compares."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_LETTERS))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def words(text):
    """The folded words of `text`, in order."""
    return WORD.findall(fold(text))


def matches(text, search):
    """True if every word of `search` begins a word of `text` (SQLite's meaning)."""
    wanted = words(search)
    if not wanted or text is None:
        return False
    folded = " " + " ".join(words(text))
    return all(" " + word in folded for word in wanted)


def register_sqlite_functions(sender, connection, **kwargs):
    """`connection_created` receiver: gives SQLite `chat_search_match(text, search)`."""
    if connection.vendor == "sqlite":
        connection.connection.create_function(
            "chat_search_match", 2, _sqlite_match, deterministic=True
        )


def _sqlite_match(text, search):
    return int(matches(text, search))


class _SearchCondition(Expression):
    """A boolean condition compiled per database (as_sqlite / as_postgresql); any
    other database is refused rather than given a meaning it does not have."""

    conditional = True
    output_field = BooleanField()

    def as_sql(self, compiler, connection):
        raise NotImplementedError(f"search is not implemented on {connection.vendor}")


class Matches(_SearchCondition):
    """A condition: the column `source` (an F() of `content` or `title`) matches the
    search text `search` (already through `clean_search`).

    On PostgreSQL, `content` reads the message's stored `search_vector`; any other
    column is vectorized on the fly (titles: a user has few conversations).
    """

    def __init__(self, source, search):
        super().__init__()
        self.source = source
        self.search = search

    def get_source_expressions(self):
        return [self.source]

    def set_source_expressions(self, exprs):
        (self.source,) = exprs

    def as_sqlite(self, compiler, connection):
        column, params = compiler.compile(self.source)
        return f"chat_search_match({column}, %s)", (*params, self.search)

    def as_postgresql(self, compiler, connection):
        if self.source.target.name == "content":
            document = f"{compiler.quote_name_unless_alias(self.source.alias)}.search_vector"
            params = ()
        else:
            column, params = compiler.compile(self.source)
            document = f"to_tsvector('simple'::regconfig, chat_unaccent({column}))"
        return f"({document} @@ chat_search_query(%s))", (*params, self.search)


# How far a conversation search walks the owner's conversations one at a time
# (`InMatchingMessage`): at most this many conversations, or messages in them.
WALK_CONVERSATIONS = 50
WALK_MESSAGES = 5_000


class InMatchingMessage(_SearchCondition):
    """A condition on conversations: one of the conversation's messages matches the
    search text `search` (already through `clean_search`). `owner` is whose
    conversations are searched (a pk).

    On PostgreSQL a prefix (`'milk':*`) makes GIN read the posting lists of every
    user's matching words: for a common word, hundreds of thousands of entries,
    whoever searches. So the list's most recently active conversations (the first
    WALK_CONVERSATIONS, or WALK_MESSAGES messages) are checked one at a time, each
    along its own messages (message_conversation_seq_unique), which finds a
    page of a common word's conversations in about a millisecond; past them, the
    owner's matching messages are read from the index once, as a list of
    conversation ids, which is cheap for the rare words a walk would not find soon.
    Both are in one statement: PostgreSQL computes the list (an InitPlan) only if
    the scan reaches a conversation past the walk. `ts_match_vq` is `@@` by name, so
    the planner does not combine the walk's probe with the GIN index.
    (bench/README.md, "History", has the measurements.)

    On SQLite, the owner's matching messages' conversations.
    """

    def __init__(self, search, owner):
        super().__init__()
        self.search = search
        self.owner = owner
        self.conversation = F("pk")
        self.updated_at = F("updated_at")

    def get_source_expressions(self):
        return [self.conversation, self.updated_at]

    def set_source_expressions(self, exprs):
        self.conversation, self.updated_at = exprs

    def as_sqlite(self, compiler, connection):
        conversation, params = compiler.compile(self.conversation)
        return (
            f"{conversation} IN (SELECT conversation_id FROM chat_message"
            " WHERE owner_id = %s AND chat_search_match(content, %s))",
            (*params, self.owner, self.search),
        )

    def as_postgresql(self, compiler, connection):
        conversation, conversation_params = compiler.compile(self.conversation)
        updated_at, updated_at_params = compiler.compile(self.updated_at)
        sql = f"""CASE WHEN {updated_at} > COALESCE((
            SELECT updated_at FROM (
                SELECT updated_at, row_number() OVER walk AS conversations,
                       sum(message_count) OVER walk AS messages
                FROM chat_conversation WHERE owner_id = %s
                WINDOW walk AS (ORDER BY updated_at DESC, id DESC)
            ) AS walked WHERE conversations > %s OR messages > %s LIMIT 1
        ), '-infinity')
        THEN EXISTS (
            SELECT 1 FROM chat_message AS walked_message
            WHERE walked_message.conversation_id = {conversation}
              AND ts_match_vq(walked_message.search_vector, chat_search_query(%s))
            OFFSET 0
        )
        ELSE {conversation} = ANY (ARRAY(
            SELECT conversation_id FROM chat_message
            WHERE owner_id = %s AND search_vector @@ chat_search_query(%s)
        )) END"""
        params = (
            *updated_at_params,
            self.owner,
            WALK_CONVERSATIONS,
            WALK_MESSAGES,
            *conversation_params,
            self.search,
            *conversation_params,
            self.owner,
            self.search,
        )
        return sql, params


def snippet(content, search, width=160):
    """The part of `content` around its first word that a search word begins, at most
    about `width` characters, with "…" where it was cut. Plain text (no markup)."""
    if len(content) <= width:
        return content
    wanted = words(search)
    start = 0
    for match in WORD.finditer(content):
        token = fold(match.group())
        if any(token.startswith(word) for word in wanted):
            start = match.start()
            break
    begin = max(0, min(start - width // 4, len(content) - width))
    if begin > 0:
        space = content.rfind(" ", begin, start)
        begin = space + 1 if space != -1 else begin
    end = min(len(content), begin + width)
    if end < len(content):
        space = content.rfind(" ", start + 1, end)
        end = space if space != -1 else end
    text = content[begin:end].strip()
    return ("…" if begin > 0 else "") + text + ("…" if end < len(content) else "")
