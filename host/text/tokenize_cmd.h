/* `vkdiff tokenize`: the body of the CLI verb, so the CLI only forwards to it. */
#ifndef VKD_TEXT_TOKENIZE_CMD_H
#define VKD_TEXT_TOKENIZE_CMD_H

#include <stdio.h>

/* argv[0] is the verb; then
 *   --tokenizer PATH   (required) bpe_simple_vocab_16e6.txt.gz, vocab.json, or a folder
 *   --sd2              pad with 0 (OpenCLIP) instead of EOS
 *   --no-emphasis      take ( ) [ ] literally
 *   --raw              print the plain encoding: no BOS/EOS, no chunks, no emphasis
 *   -v                 one line per token: index, id, weight, token text
 *   TEXT...            the prompt (several arguments are joined with spaces)
 * Prints the ids to out (77 per line, one line per chunk); errors go to the log.
 * Returns 0 on success, 2 for bad arguments, 1 when tokenizing fails. */
int vkd_tokenize_main(int argc, char **argv, FILE *out);

#endif
