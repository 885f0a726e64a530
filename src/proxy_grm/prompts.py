"""The protocol prompts, defined once and used by every stage.

Distillation, the SFT and RL training sets, the proxy service and every eval
build their model inputs from these strings, so training and evaluation see the
same text.

Canonical GRM instruction: the version in the paper's distillation figure (the
prompt the teacher saw, hence the text the GRM was trained on). The authors'
eval scripts carry a variant with "(including the mandatory and custom ones)"
and extra blank lines (``RELEASE_GRM_INSTRUCTION``); only ``--protocol release``
uses it, to reproduce the paper's table. Everything else uses the figure's text,
so eval matches training.
"""

from __future__ import annotations

GRM_INSTRUCTION = """You are provided with an image and a question for this image. Please act as an impartial judge and evaluate the quality of the responses provided by two AI Chatbots to the Client's question displayed below.
### Evaluation Process:
1. **Develop a Multi-Dimensional Rubric**: Generate evaluation criteria (rubric) tailored to the image, Client's question and context, enclosed in <rubric>...</rubric> tags.

2. **Assign Weights**: Distribute weights (totaling 100%) to all rubric items based on their relative importance to the specific task.

3. **Justify and Compare**: Inside <rubric>, include a <justify> section. Then, compare both responses based on these criteria in the <eval> section.

Important Notes:
- Be objective and base your evaluation only on the visual evidence in the image, question and the content of the responses.
- Do not let response order, length, or Chatbot names affect your judgment.
- You need to choose which response is better for the given question and provide a detailed reason enclosed within <eval> and </eval> tags. Conclude with a single numeric choice enclosed within <answer> and </answer> tags: Output "1" if Response 1 is better.
 Output "2" if Response 2 is better.

### Output Format:
Your output must follow this format:
<rubric>
[List each rubric item with its description and assigned weight]
<justify>
Explain why these criteria and weights were chosen based on the specific context of the image and question.
</justify>
</rubric>
<eval>
[Provide a detailed comparison]
- Use <quote_1> or <summary_1> for Chatbot 1's performance.
- Use <quote_2> or <summary_2> for Chatbot 2's performance.
- Compare how each chatbot met or failed each specific rubric item.
</eval>
<answer>1/2</answer>"""

GRM_PAIR_TEMPLATE = """[Client Question]
{question}

[The Start of Chatbot 1's Response]
{response_1}
[The End of Chatbot 1's Response]

[The Start of Chatbot 2's Response]
{response_2}
[The End of Chatbot 2's Response]"""

# The proxy's task statement, as released, with the release's stray indentation
# and literal "\n" sequences cleaned into real line breaks.
PROXY_INSTRUCTION = """You are a highly precise evaluation assistant.
Your Task:
1. Carefully analyze the image and the question.
2. Evaluate both responses strictly according to the provided Evaluation Rubric.
3. Compare the strengths and weaknesses of both responses and provide a detailed reason enclosed within <think> and </think> tags.
4. Decide which response is better based on the rubric with a single numeric choice enclosed within <answer> and </answer> tags:
 Output "1" if Response 1 is better.
 Output "2" if Response 2 is better."""

PROXY_DATA_TEMPLATE = """### Data for Evaluation:
**User Question:** {question}
**Response 1:** {response_1}
**Response 2:** {response_2}
**Evaluation Rubric:** {rubric}
**Formatting Requirements:**
<think>Your detailed reason goes here</think><answer>1/2</answer>"""


# The Proxy-GRM release's eval scripts (``eval/vl_reward_bench.py``,
# ``multimodal_reward_bench.py``, ``mmrlhf_reward_bench.py``; identical in all
# three) use their own variant of the GRM instruction: "(including the mandatory
# and custom ones)", indented lines, extra blank lines. ``--protocol release``
# uses it, character for character, so a checkpoint scores as in the paper's
# table; nothing else does. (``\x20``: the release has a trailing space there.)
# tests/test_prompts.py compares it with the release's own literal, evaluated from
# a verbatim copy of each script (tests/fixtures/release_eval/).
RELEASE_GRM_INSTRUCTION = """You are provided with an image and a question for this image. Please act as an impartial judge and evaluate the quality of the responses provided by two AI Chatbots to the Client's question displayed below.


### Evaluation Process:

1. **Develop a Multi-Dimensional Rubric**:

   Generate evaluation criteria (rubric) tailored to the image, Client's question and context, enclosed in <rubric>...</rubric> tags.


2. **Assign Weights**: Distribute weights (totaling 100%) to all rubric items based on their relative importance to the specific task.


3. **Justify and Compare**: Inside <rubric>, include a <justify> section. Then, compare both responses based on these criteria in the <eval> section.



Important Notes:

- Be objective and base your evaluation only on the visual evidence in the image, question and the content of the responses.

- Do not let response order, length, or Chatbot names affect your judgment.


- You need to choose which response is better for the given question and provide a detailed reason enclosed within <eval> and </eval> tags. Conclude with a single numeric choice enclosed within <answer> and </answer> tags:
 Output "1" if Response 1 is better.
 Output "2" if Response 2 is better.




### Output Format:

Your output must follow this format:



<rubric>

  [List each rubric item with its description and assigned weight]

  <justify>\x20

    Explain why these criteria (including the mandatory and custom ones) and weights were chosen based on the specific context of the image and question.

  </justify>

</rubric>



<eval>

  [Provide a detailed comparison]

  - Use <quote_1> or <summary_1> for Chatbot 1's performance.

  - Use <quote_2> or <summary_2> for Chatbot 2's performance.

  - Compare how each chatbot met or failed each specific rubric item.

</eval>



<answer>1/2</answer>
"""

# The release's pair text: a literal ``<image>`` line first (the image content
# item is sent as well), then our pair template.
RELEASE_PAIR_TEMPLATE = "<image>\n" + GRM_PAIR_TEMPLATE


def grm_prompt(question: str, response_1: str, response_2: str) -> str:
    """The GRM's user text for one pair (the image goes before it).

    >>> grm_prompt("Q?", "a", "b").endswith("[The End of Chatbot 2's Response]")
    True
    """
    pair = GRM_PAIR_TEMPLATE.format(question=question, response_1=response_1, response_2=response_2)
    return f"{GRM_INSTRUCTION}\n{pair}"


def release_grm_prompt(question: str, response_1: str, response_2: str) -> str:
    """The release eval scripts' user text for one pair (their ``qs``), character for character.

    >>> release_grm_prompt("Q?", "a", "b").split("</answer>")[-1].startswith("\\n<image>\\n[Client Question]")
    True
    """
    pair = RELEASE_PAIR_TEMPLATE.format(question=question, response_1=response_1, response_2=response_2)
    return RELEASE_GRM_INSTRUCTION + pair


def proxy_prompt(question: str, response_1: str, response_2: str, rubric: str) -> str:
    """The proxy agent's user text: task, then the pair and the rubric to judge by.

    One builder for the Proxy-SFT/Proxy-RL data and the proxy service.
    """
    data = PROXY_DATA_TEMPLATE.format(
        question=question, response_1=response_1, response_2=response_2, rubric=rubric
    )
    return f"{PROXY_INSTRUCTION}\n\n{data}"
